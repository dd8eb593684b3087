//! `lel-host check`: validate modules against the contract, instantiate them
//! and run `init`, and say what each one claims (and, for a 0.2.0 module,
//! its parameters and event buffer). Non-real-time.

use std::path::PathBuf;

use crate::control::{Control, LoadOutcome, Request, Settings};
use crate::files::{collect_modules, show_paths, signal_name};

/// One module's verdict: the line printed for it (which names the file).
pub struct Verdict {
    pub line: String,
    pub ok: bool,
}

/// Check every module under `paths`; each is loaded into a fresh engine.
///
/// # Errors
/// When a path does not exist or the runtime cannot be set up.
pub fn check(paths: &[PathBuf], settings: &Settings) -> anyhow::Result<Vec<Verdict>> {
    let files = collect_modules(paths)?;
    anyhow::ensure!(
        !files.is_empty(),
        "no `.wasm` or `.wat` files in {}",
        show_paths(paths)
    );
    let runtime = crate::loader::runtime::Runtime::new()?;
    let mut verdicts = Vec::new();
    for path in files {
        let name = signal_name(&path);
        let (mut control, _mixer) = Control::with_runtime(settings.clone(), runtime.clone())?;
        let result = control.load_request(Request::file(name.clone(), path.clone()));
        let (line, ok) = match result {
            Ok(LoadOutcome::Loaded(r)) => {
                let claims: Vec<_> = r.layout.blocks.iter().filter(|b| !b.param).collect();
                let keys: Vec<String> = claims
                    .iter()
                    .map(|b| format!("\"{}\" {} B", b.key, b.size))
                    .collect();
                let mut state = if keys.is_empty() {
                    "no state claimed".to_string()
                } else {
                    format!(
                        "state {} of {} bytes claimed: {}",
                        claims.iter().map(|b| b.size as u64).sum::<u64>(),
                        r.state_len,
                        keys.join(", ")
                    )
                };
                if r.contract == crate::contract::ContractVersion::V0_2 {
                    let params: Vec<String> = r
                        .params
                        .iter()
                        .map(|p| {
                            let unit = if p.unit.is_empty() {
                                String::new()
                            } else {
                                format!(" {}", p.unit)
                            };
                            let steps = if p.steps >= 2 {
                                format!(" in {} steps", p.steps)
                            } else {
                                String::new()
                            };
                            format!(
                                "{} {} ({} to {}{unit}{steps})",
                                p.key, p.default, p.min, p.max
                            )
                        })
                        .collect();
                    state.push_str(&format!(
                        "; contract 0.2.0: {}; {}",
                        if params.is_empty() {
                            "no parameters".to_string()
                        } else {
                            format!("parameters {}", params.join(", "))
                        },
                        match r.event_capacity {
                            Some(n) => format!("events: {n} a block"),
                            None => "no event buffer".to_string(),
                        }
                    ));
                }
                let ch = if r.channels == 1 {
                    "channel"
                } else {
                    "channels"
                };
                (
                    format!(
                        "ok    {name}: {} {ch}, {state} ({})",
                        r.channels,
                        path.display()
                    ),
                    true,
                )
            }
            Ok(LoadOutcome::Unchanged) => unreachable!("a fresh engine has nothing loaded"),
            Err(e) => (format!("error {name}: {}: {e}", path.display()), false),
        };
        verdicts.push(Verdict { line, ok });
    }
    Ok(verdicts)
}
