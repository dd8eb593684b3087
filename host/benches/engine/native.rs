//! An SDK example compiled for this machine (`native-c.c` for C,
//! `native-zig.zig` for Zig), loaded as a shared library: part 3's
//! reference for that language's chain in wasm, the same source through the
//! same compiler, natively.

use std::ffi::{CString, c_void};
use std::path::Path;
use std::process::Command;

type Init = unsafe extern "C" fn(u32, u32) -> i32;
type Render = unsafe extern "C" fn(*mut f32, u64, u32, u32, *mut u64);

pub struct Native {
    _handle: *mut c_void,
    render: Render,
    channels: u32,
    block: u32,
    clock: u64,
}

impl Native {
    /// Compile the C example `example` (a path under the repository, such
    /// as `examples/c/chain.c`) with clang into `out` and load it.
    pub fn c(
        repo: &Path,
        example: &str,
        out: &Path,
        sample_rate: u32,
        block: u32,
    ) -> Result<Self, String> {
        let mut cmd = Command::new("clang");
        cmd.current_dir(repo)
            .args([
                "-O2",
                "-std=c11",
                "-shared",
                "-fPIC",
                "-ffp-contract=off",
                "-DLEL_NATIVE",
            ])
            .args(["-Wno-unknown-attributes", "-I", "guest-sdk/c", "-I", "."])
            .arg(format!("-DLEL_EXAMPLE=\"{example}\""))
            .arg("-o")
            .arg(out)
            .arg("host/benches/engine/native-c.c")
            .arg("-lm");
        run(&mut cmd, "clang", "apt-get install clang", example)?;
        Self::load(out, example, sample_rate, block)
    }

    /// Compile the Zig example `example` (`examples/zig/chain.zig`) with
    /// the pinned Zig (`scripts/setup-languages`) into `out` and load it.
    pub fn zig(
        repo: &Path,
        example: &str,
        out: &Path,
        sample_rate: u32,
        block: u32,
    ) -> Result<Self, String> {
        let mut cmd = Command::new("python3");
        cmd.current_dir(repo)
            .env("PYTHONPATH", repo.join("target/tools/ziglang"))
            .args([
                "-m",
                "ziglang",
                "build-lib",
                "-dynamic",
                "-O",
                "ReleaseFast",
            ])
            .args([
                "--cache-dir",
                "target/tools/zig-cache",
                "--global-cache-dir",
                "target/tools/zig-global-cache",
            ])
            .args([
                "--dep",
                "lel",
                "--dep",
                "example",
                "-Mroot=host/benches/engine/native-zig.zig",
            ])
            .args([
                "--dep",
                "lel",
                &format!("-Mexample={example}"),
                "-Mlel=guest-sdk/zig/lel.zig",
            ])
            .arg(format!("-femit-bin={}", out.display()));
        run(&mut cmd, "zig", "scripts/setup-languages", example)?;
        Self::load(out, example, sample_rate, block)
    }

    /// Load the library `out` built from `example`, initialised at
    /// `sample_rate` for `block`-frame blocks.
    fn load(out: &Path, example: &str, sample_rate: u32, block: u32) -> Result<Self, String> {
        let path = CString::new(out.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: `path` is a NUL-terminated file name; the library is the
        // one just built from the benchmark's own source.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("dlopen {} failed", out.display()));
        }
        let symbol = |name: &str| {
            let name = CString::new(name).expect("no NUL");
            // SAFETY: `handle` is a live library handle, `name` NUL-terminated.
            let at = unsafe { libc::dlsym(handle, name.as_ptr()) };
            (!at.is_null())
                .then_some(at)
                .ok_or_else(|| format!("{} has no {name:?}", out.display()))
        };
        // SAFETY: both symbols are defined in native-c.c and native-zig.zig
        // with exactly these signatures.
        let (init, render) = unsafe {
            (
                std::mem::transmute::<*mut c_void, Init>(symbol("lel_native_init")?),
                std::mem::transmute::<*mut c_void, Render>(symbol("lel_native_render")?),
            )
        };
        // SAFETY: plain C function of the library, called once before render.
        let channels = unsafe { init(sample_rate, block) };
        if channels < 1 {
            return Err(format!("{example}: init returned {channels}"));
        }
        Ok(Native {
            _handle: handle,
            render,
            channels: channels as u32,
            block,
            clock: 0,
        })
    }

    /// Render `out.len() / channels` frames on.
    pub fn render_into(&mut self, out: &mut [f32]) {
        let frames = (out.len() / self.channels as usize) as u64;
        // SAFETY: `out` holds `frames * channels` floats; the library writes
        // only those and advances `clock`.
        unsafe {
            (self.render)(
                out.as_mut_ptr(),
                frames,
                self.channels,
                self.block,
                &mut self.clock,
            );
        }
    }
}

/// Run the compiler `cmd` (`tool`, installed by `install`) on `example`.
fn run(cmd: &mut Command, tool: &str, install: &str, example: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{tool}: {e} ({install})"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{tool} failed on {example}"))
    }
}
