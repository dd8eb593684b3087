//! Claiming state: the host's `claim` import on wasm32, a bump allocator with
//! the same rules natively, and the typed views (`Block`, `One`) helpers keep
//! on their claimed blocks.

use core::marker::PhantomData;
use core::ptr::NonNull;

use bytemuck::Pod;

use crate::contract;
use crate::ctx::Ctx;
use crate::events::{Input, NoteState};
use crate::key::{Key, KeyBuf, MAX_KEY_LEN};

/// Alignment of every block the SDK's helpers claim.
pub const CLAIM_ALIGN: u32 = contract::CLAIM_ALIGN as u32;

/// Why a signal could not be set up: a `claim` error code (`-1` .. `-6`, the
/// contract's) or one of the SDKs' own (`-16` .. `-20`), returned by `init`
/// as is. The numbers are generated from `wit/constants.txt` (see
/// [`contract`]) and shared by the C, Zig and AssemblyScript SDKs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(pub i32);

impl Error {
    /// `-1`: the state region cannot hold the block.
    pub const REGION_FULL: Error = Error(contract::REGION_FULL);
    /// `-2`: empty key, longer than 256 bytes, or not UTF-8.
    pub const BAD_KEY: Error = Error(contract::BAD_KEY);
    /// `-3`: alignment not a power of two, or above 16.
    pub const BAD_ALIGN: Error = Error(contract::BAD_ALIGN);
    /// `-4`: the key was already claimed in this `init`.
    pub const DUPLICATE_KEY: Error = Error(contract::DUPLICATE_KEY);
    /// `-5`: `claim` called outside `init`.
    pub const NOT_IN_INIT: Error = Error(contract::NOT_IN_INIT);
    /// `-6`: no (valid) state region.
    pub const NO_STATE_REGION: Error = Error(contract::NO_STATE_REGION);
    /// `-7`: a parameter's default, minimum or maximum is not finite,
    /// `min >= max`, the default is outside, or `steps` is 1.
    pub const BAD_RANGE: Error = Error(contract::BAD_RANGE);
    /// `-8`: more than 64 parameters.
    pub const TOO_MANY_PARAMS: Error = Error(contract::TOO_MANY_PARAMS);
    /// `-9`: a parameter's unit is longer than 16 bytes or not UTF-8.
    pub const BAD_UNIT: Error = Error(contract::BAD_UNIT);
    /// `-16`: `init` got a zero sample rate or `max-frames`.
    pub const BAD_ARGS: Error = Error(contract::BAD_ARGS);
    /// `-17`: the output buffer cannot hold `max-frames` frames.
    pub const OUTPUT_TOO_SMALL: Error = Error(contract::OUTPUT_TOO_SMALL);
    /// `-18`: the host answered a claim with an address outside the region
    /// or misaligned.
    pub const BAD_ADDRESS: Error = Error(contract::BAD_ADDRESS);
    /// `-19`: `init` or `process` re-entered.
    pub const BUSY: Error = Error(contract::BUSY);
    /// `-20`: a channel count outside 1 to 64 (returned by the other SDKs;
    /// a Rust signal's channel count is checked when it compiles).
    pub const BAD_CHANNELS: Error = Error(contract::BAD_CHANNELS);

    /// What the code means, for the log.
    pub fn describe(self) -> &'static str {
        match self.0 {
            contract::REGION_FULL => {
                "region full: raise the state size with lel::signal!(..., state = BYTES)"
            }
            contract::BAD_KEY => "bad key: empty, too long, or not UTF-8",
            contract::BAD_ALIGN => "bad alignment",
            contract::DUPLICATE_KEY => "duplicate key: two helpers claim the same name",
            contract::NOT_IN_INIT => "claim outside init",
            contract::NO_STATE_REGION => "no state region",
            contract::BAD_RANGE => {
                "bad parameter range: default, min, max must be finite, min < max, default in between, steps not 1"
            }
            contract::TOO_MANY_PARAMS => "too many parameters (at most 64)",
            contract::BAD_UNIT => "bad parameter unit: at most 16 bytes of UTF-8",
            contract::BAD_ARGS => "bad init arguments",
            contract::OUTPUT_TOO_SMALL => "output buffer too small for max-frames",
            contract::BAD_ADDRESS => "claim returned an address outside the state region",
            contract::BUSY => "init or process re-entered",
            contract::BAD_CHANNELS => "channel count outside 1 to 64",
            _ => "unknown error",
        }
    }
}

/// Something that hands out blocks of the state region by key, following
/// the rules of `claim` in `wit/lel.wit`. Returns the block's address or
/// the (negative) error code.
pub trait Claimer {
    /// Claims `size` bytes aligned to `align` under `key`.
    fn claim(&mut self, key: &[u8], size: u32, align: u32) -> Result<NonNull<u8>, i32>;

    /// Declares a parameter (contract 0.2 `param`) and returns the address
    /// of its `f32` value cell.
    fn param(&mut self, decl: &ParamDecl<'_>) -> Result<NonNull<u8>, i32>;
}

/// A parameter declaration, as `param` takes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamDecl<'a> {
    /// 1 to 64 bytes of ASCII letters, digits, `_`, `-`, `.`.
    pub key: &'a [u8],
    /// Value before the user sets one.
    pub default: f32,
    /// Lowest value.
    pub min: f32,
    /// Highest value.
    pub max: f32,
    /// 0 to 16 bytes of UTF-8 ("Hz", "s", "").
    pub unit: &'a [u8],
    /// 0 continuous, N >= 2 evenly spaced values from `min` to `max`.
    pub steps: u32,
}

/// The contract's checks on a parameter declaration (the host makes the
/// same; the native claimers use this).
pub fn check_param(d: &ParamDecl<'_>) -> Result<(), i32> {
    let key_ok = !d.key.is_empty()
        && d.key.len() <= contract::MAX_PARAM_KEY_LEN
        && d.key
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !key_ok {
        return Err(Error::BAD_KEY.0);
    }
    let finite = d.default.is_finite() && d.min.is_finite() && d.max.is_finite();
    if !finite || d.min >= d.max || d.default < d.min || d.default > d.max || d.steps == 1 {
        return Err(Error::BAD_RANGE.0);
    }
    if d.unit.len() > contract::MAX_UNIT_LEN || core::str::from_utf8(d.unit).is_err() {
        return Err(Error::BAD_UNIT.0);
    }
    Ok(())
}

/// The contract's checks on a key and an alignment.
pub fn check_claim(key: &[u8], align: u32) -> Result<(), i32> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || core::str::from_utf8(key).is_err() {
        return Err(Error::BAD_KEY.0);
    }
    if !align.is_power_of_two() || align > contract::MAX_ALIGN as u32 {
        return Err(Error::BAD_ALIGN.0);
    }
    Ok(())
}

/// FNV-1a, 64 bits: how the native claimers remember which keys they gave out.
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The host's `claim`, on wasm32.
#[cfg(target_arch = "wasm32")]
pub struct HostClaimer;

#[cfg(target_arch = "wasm32")]
impl Claimer for HostClaimer {
    fn claim(&mut self, key: &[u8], size: u32, align: u32) -> Result<NonNull<u8>, i32> {
        // SAFETY: `claim` only reads `key.len()` bytes at `key.as_ptr()`, a
        // live slice in this module's memory; wasm32 addresses fit in i32.
        let r = unsafe {
            contract::host::claim(
                key.as_ptr() as usize as i32,
                key.len() as i32,
                size as i32,
                align as i32,
            )
        };
        if r < 0 {
            return Err(r);
        }
        NonNull::new(r as u32 as usize as *mut u8).ok_or(Error::BAD_ADDRESS.0)
    }

    fn param(&mut self, d: &ParamDecl<'_>) -> Result<NonNull<u8>, i32> {
        // SAFETY: `param` only reads the key's and unit's bytes, live slices
        // in this module's memory; wasm32 addresses fit in i32.
        let r = unsafe {
            contract::host::param(
                d.key.as_ptr() as usize as i32,
                d.key.len() as i32,
                d.default,
                d.min,
                d.max,
                d.unit.as_ptr() as usize as i32,
                d.unit.len() as i32,
                d.steps as i32,
            )
        };
        if r < 0 {
            return Err(r);
        }
        NonNull::new(r as u32 as usize as *mut u8).ok_or(Error::BAD_ADDRESS.0)
    }
}

/// Claims by bumping a pointer through the region, with the host's key
/// rules: what `init` uses natively (where there is no host) and what the
/// native tests use. Fresh blocks are zeroed.
pub struct Bump {
    base: NonNull<u8>,
    len: usize,
    next: usize,
    keys: [u64; Bump::MAX_KEYS],
    count: usize,
}

impl Bump {
    /// Claims one bump allocator remembers (for duplicate detection).
    pub const MAX_KEYS: usize = 512;

    /// A claimer over `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` must be memory this claimer may hand out, valid
    /// for writes, and not otherwise in use while the blocks are.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Bump {
        Bump {
            base,
            len,
            next: 0,
            keys: [0; Bump::MAX_KEYS],
            count: 0,
        }
    }
}

impl Claimer for Bump {
    fn claim(&mut self, key: &[u8], size: u32, align: u32) -> Result<NonNull<u8>, i32> {
        if self.len == 0 {
            return Err(Error::NO_STATE_REGION.0);
        }
        check_claim(key, align)?;
        let h = key_hash(key);
        if self.keys[..self.count].contains(&h) {
            return Err(Error::DUPLICATE_KEY.0);
        }
        if self.count == Bump::MAX_KEYS {
            return Err(Error::REGION_FULL.0);
        }
        let base = self.base.as_ptr() as usize;
        let a = align as usize;
        let start = (base + self.next).next_multiple_of(a) - base;
        let end = start
            .checked_add(size as usize)
            .ok_or(Error::REGION_FULL.0)?;
        if end > self.len {
            return Err(Error::REGION_FULL.0);
        }
        self.keys[self.count] = h;
        self.count += 1;
        self.next = end;
        // SAFETY: `start..end` lies within the region (checked above), which
        // `Bump::new`'s caller lets us write; no block handed out overlaps it.
        unsafe {
            let p = self.base.as_ptr().add(start);
            core::ptr::write_bytes(p, 0, size as usize);
            Ok(NonNull::new_unchecked(p))
        }
    }

    fn param(&mut self, d: &ParamDecl<'_>) -> Result<NonNull<u8>, i32> {
        check_param(d)?;
        // A namespace of its own: the key's hash is taken over a prefix
        // no claim key can have a hash collision with by construction of
        // the prefix byte (0xff is not UTF-8).
        let mut k = [0u8; contract::MAX_PARAM_KEY_LEN + 1];
        k[0] = 0xff;
        k[1..=d.key.len()].copy_from_slice(d.key);
        let h = key_hash(&k[..=d.key.len()]);
        if self.keys[..self.count].contains(&h) {
            return Err(Error::DUPLICATE_KEY.0);
        }
        if self.count == Bump::MAX_KEYS {
            return Err(Error::REGION_FULL.0);
        }
        let base = self.base.as_ptr() as usize;
        let start = (base + self.next).next_multiple_of(4) - base;
        let end = start + 4;
        if end > self.len {
            return Err(Error::REGION_FULL.0);
        }
        self.keys[self.count] = h;
        self.count += 1;
        self.next = end;
        // SAFETY: as in `claim`: `start..end` is inside the region, fresh.
        unsafe {
            let p = self.base.as_ptr().add(start);
            p.cast::<f32>().write(d.default);
            Ok(NonNull::new_unchecked(p))
        }
    }
}

/// What helpers get while the signal is set up (inside `init`): the sample
/// rate, `max-frames`, the channel count, and claiming.
pub struct Binder<'a> {
    claimer: &'a mut dyn Claimer,
    region: (usize, usize),
    sample_rate: f64,
    max_frames: u32,
    channels: u32,
    slots: Option<NonNull<crate::func::Slots>>,
    failed: KeyBuf,
    input: Input,
    param_keys: [u64; contract::MAX_PARAMS],
}

impl<'a> Binder<'a> {
    /// A binder claiming from `claimer`, whose blocks must lie in the region
    /// `region_start..region_start + region_len` (checked for every claim).
    pub fn new(
        claimer: &'a mut dyn Claimer,
        region_start: usize,
        region_len: usize,
        sample_rate: f64,
        max_frames: u32,
        channels: u32,
    ) -> Self {
        Binder {
            claimer,
            region: (region_start, region_len),
            sample_rate,
            max_frames,
            channels,
            slots: None,
            failed: KeyBuf::default(),
            input: Input::new(),
            param_keys: [0; contract::MAX_PARAMS],
        }
    }

    /// Declares a parameter with the host and returns its value cell. A key
    /// declared again in the same `init` (a `param("cutoff", ..)` in every
    /// voice of a `poly`) gets the first declaration's cell: the host sees
    /// one `param` call per key, and the n-th key declared has index n - 1.
    pub fn param(&mut self, d: &ParamDecl<'_>) -> Result<NonNull<f32>, Error> {
        let h = key_hash(d.key);
        let n = self.input.count;
        if let Some(i) = self.param_keys[..n].iter().position(|&k| k == h)
            && let Some(cell) = self.input.params[i]
        {
            return Ok(cell);
        }
        let fail = |b: &mut Self, code: i32| {
            let mut buf = KeyBuf::default();
            buf.push(d.key);
            b.failed = buf;
            Error(code)
        };
        if n == contract::MAX_PARAMS {
            return Err(fail(self, Error::TOO_MANY_PARAMS.0));
        }
        let p = self.claimer.param(d).map_err(|c| fail(self, c))?;
        let (start, len) = self.region;
        let a = p.as_ptr() as usize;
        if a < start || a - start > len || len - (a - start) < 4 || !a.is_multiple_of(4) {
            return Err(fail(self, Error::BAD_ADDRESS.0));
        }
        let cell = p.cast::<f32>();
        self.param_keys[n] = h;
        self.input.params[n] = Some(cell);
        self.input.count = n + 1;
        Ok(cell)
    }

    /// The monophonic note state (claimed under `"notes"` the first time).
    pub fn notes(&mut self) -> Result<NonNull<NoteState>, Error> {
        if let Some(n) = self.input.notes {
            return Ok(n);
        }
        let p = self
            .claim_bytes(&Key::fixed("notes"), size_of::<NoteState>() as u32)?
            .cast();
        self.input.notes = Some(p);
        Ok(p)
    }

    /// What the runtime needs to apply events: the parameter cells by index
    /// and the note state.
    pub fn input(&self) -> Input {
        self.input
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// Most frames `process` will be asked for at once.
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// Channels of the whole signal.
    pub fn channels(&self) -> u32 {
        self.channels
    }

    /// The context at clock 0, for evaluating constant parameters once.
    pub fn ctx(&self) -> Ctx {
        Ctx::new(self.sample_rate, 0, self.channels)
    }

    /// The key of the claim that failed, if one did.
    pub fn failed_key(&self) -> &[u8] {
        self.failed.as_bytes()
    }

    /// Claims `count` values of `T` (at least one) under `key`, aligned to
    /// 16 bytes, and returns a view of them in place.
    pub fn claim<T: Pod>(&mut self, key: &Key, count: usize) -> Result<Block<T>, Error> {
        let count = count.max(1);
        let bytes = count
            .checked_mul(size_of::<T>())
            .filter(|&b| b <= u32::MAX as usize)
            .ok_or(Error::REGION_FULL)?;
        let p = self.claim_bytes(key, bytes as u32)?;
        Ok(Block {
            ptr: p.cast(),
            len: count,
            _own: PhantomData,
        })
    }

    /// Claims one `T` under `key`.
    pub fn claim_one<T: Pod>(&mut self, key: &Key) -> Result<One<T>, Error> {
        let b = self.claim::<T>(key, 1)?;
        // SAFETY: `b` is a fresh claimed block of one `T` that no other view
        // covers (`b` is dropped here).
        Ok(unsafe { One::from_raw(b.ptr) })
    }

    /// Claims `size` bytes under `key`, aligned to [`CLAIM_ALIGN`], and
    /// checks that the answer lies in the region.
    pub fn claim_bytes(&mut self, key: &Key, size: u32) -> Result<NonNull<u8>, Error> {
        const { assert!(CLAIM_ALIGN as usize >= align_of::<f64>()) };
        let mut buf = KeyBuf::default();
        let bytes = key.write(&mut buf);
        let r = self.claimer.claim(bytes, size, CLAIM_ALIGN);
        let p = match r {
            Ok(p) => p,
            Err(code) => {
                self.failed = buf;
                return Err(Error(code));
            }
        };
        let (start, len) = self.region;
        let a = p.as_ptr() as usize;
        let inside = a >= start && a - start <= len && len - (a - start) >= size as usize;
        if !inside || !a.is_multiple_of(CLAIM_ALIGN as usize) {
            self.failed = buf;
            return Err(Error::BAD_ADDRESS);
        }
        Ok(p)
    }

    /// The signal's user slots (claimed under `"state"` the first time).
    pub(crate) fn slots(&mut self) -> Result<NonNull<crate::func::Slots>, Error> {
        if let Some(s) = self.slots {
            return Ok(s);
        }
        let p = self
            .claim_bytes(&Key::fixed("state"), size_of::<crate::func::Slots>() as u32)?
            .cast();
        self.slots = Some(p);
        Ok(p)
    }
}

/// A claimed block of `len` values of `T`, viewed in place.
///
/// Only [`Binder::claim`] makes a non-empty one, over a block no other view
/// covers; the view is handed out one `&mut` at a time.
pub struct Block<T> {
    ptr: NonNull<T>,
    len: usize,
    _own: PhantomData<T>,
}

impl<T> Block<T> {
    /// No block yet (before `bind`).
    pub const fn empty() -> Self {
        Block {
            ptr: NonNull::dangling(),
            len: 0,
            _own: PhantomData,
        }
    }

    /// The values.
    #[inline(always)]
    pub fn get(&mut self) -> &mut [T] {
        // SAFETY: `ptr` is either dangling with `len == 0` (an empty slice,
        // fine for any aligned non-null pointer) or a claimed block of `len`
        // `T`s: inside the state region, aligned, initialised (blocks hold
        // `Pod` values, valid for any bytes) and covered by no other view.
        // `&mut self` makes this the only live reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// A view of `len` values at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised, aligned `T`s inside a claimed
    /// block that no other view covers.
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>, len: usize) -> Self {
        Block {
            ptr,
            len,
            _own: PhantomData,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before `bind`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A claimed block of one `T`, viewed in place (no bounds check to reach it).
pub struct One<T> {
    ptr: Option<NonNull<T>>,
    _own: PhantomData<T>,
}

impl<T: Pod> One<T> {
    /// The value, or `None` before `bind`.
    #[inline(always)]
    pub fn get(&mut self) -> Option<&mut T> {
        // SAFETY: a `Some` pointer was made by `Binder::claim_one` (or
        // `from_raw`) over a claimed block holding a `T`: aligned, valid for
        // any bytes since `T: Pod`, covered by no other view; `&mut self`
        // makes this the only reference.
        self.ptr.map(|p| unsafe { &mut *p.as_ptr() })
    }
}

impl<T> One<T> {
    /// A view of the `T` at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point to an initialised, aligned `T` inside a claimed
    /// block that no other view covers.
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        One {
            ptr: Some(ptr),
            _own: PhantomData,
        }
    }

    /// No block yet (before `bind`).
    pub const fn empty() -> Self {
        One {
            ptr: None,
            _own: PhantomData,
        }
    }
}
