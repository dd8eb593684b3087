//! State keys and claims: automatic `type#index` keys in call order,
//! explicit names, the user slots, block sizes, and the claim rules (the
//! same error codes as the host's `claim`).

use lel::prelude::*;
use lel::testing::Harness;
use lel::{Error, Node};

fn keys<N: Node>(build: impl FnOnce() -> N) -> Vec<(String, usize)> {
    let h = Harness::new(48_000, build).expect("bind");
    h.claimed()
        .iter()
        .map(|c| (c.key.clone(), c.size))
        .collect()
}

fn names<N: Node>(build: impl FnOnce() -> N) -> Vec<String> {
    keys(build).into_iter().map(|(k, _)| k).collect()
}

#[test]
fn automatic_keys_count_per_type_in_call_order() {
    let k = names(|| {
        osc(440)
            .lowpass(800)
            .tremolo(5, 0.8)
            .delay(0.5, 0.25)
            .gain(0.4)
            + saw(110).lowpass(300).hpf(50, 0.7)
    });
    assert_eq!(
        k,
        [
            "osc#0",
            "lowpass#0",
            "tremolo#0",
            "delay#0",
            "osc#1",
            "lowpass#1",
            "biquad#0"
        ]
    );
    // Call order, not position in the expression.
    let k = names(|| {
        let bass = osc(55);
        let lead = osc(440);
        lead + bass
    });
    assert_eq!(k, ["osc#1", "osc#0"]);
    // Parameters that are signals get keys too, in call order.
    let k = names(|| saw(osc(5).range(430, 450)).gain(adsr(1.0, 0.1, 0.1, 0.5, 0.2)));
    assert_eq!(k, ["osc#0", "osc#1", "env#0"]);
    // Every build starts counting at 0.
    assert_eq!(names(|| osc(1) + osc(2)), ["osc#0", "osc#1"]);
    assert_eq!(names(|| noise() + noise().seed(3)), ["noise#0", "noise#1"]);
}

#[test]
fn named_helpers_keep_their_name_and_the_others_their_index() {
    let k = names(|| osc(440).lowpass(800).named("warm") + osc(220).named("sub").lowpass(300));
    assert_eq!(k, ["osc#0", "warm", "sub", "lowpass#1"]);
    let k = names(|| {
        noise().named("n")
            + adsr(1.0, 0.1, 0.1, 0.5, 0.2).named("e")
            + value(0.0).bpf(100, 1).named("b")
            + value(0.0).tremolo(1, 1).named("t")
            + value(0.0).delay(0.1, 0.1).named("d")
            + value(0.0).highpass(10).named("h")
    });
    assert_eq!(k, ["n", "e", "b", "t", "d", "h"]);
}

#[test]
fn user_slots_are_one_block_under_state() {
    let k = keys(|| {
        func(|_, s| {
            s[0] += 1.0;
            s[0]
        }) + func(|_, s| s[0])
    });
    assert_eq!(k, [("state".to_string(), 64 * 8)]);
    // Both see the same slots: the second reads what the first wrote.
    let mut h = Harness::new(48_000, || {
        func(|_, s| {
            s[1] += 1.0;
            0.0
        }) + func(|_, s| s[1])
    })
    .unwrap();
    assert_eq!(h.render(3), vec![1.0, 2.0, 3.0]);
}

#[test]
fn blocks_have_documented_sizes() {
    let sr = 48_000.0;
    let k = keys(|| {
        stereo(osc(1), noise())
            .lowpass(1)
            .highpass(1)
            .lpf(100, 1)
            .tremolo(1, 1)
            .delay(0.5, 0.1)
            .gain(adsr(1.0, 0.1, 0.1, 0.5, 0.2))
    });
    let line = (0.5f64 * sr).ceil() as usize + 2;
    assert_eq!(
        k,
        [
            ("osc#0".to_string(), 8),
            ("noise#0".to_string(), 4),
            ("lowpass#0".to_string(), 2 * 8),
            ("highpass#0".to_string(), 2 * 8),
            ("biquad#0".to_string(), 2 * 16),
            ("tremolo#0".to_string(), 8),
            ("delay#0".to_string(), 16 + line * 2 * 4),
            ("env#0".to_string(), 16),
        ]
    );
    let h = Harness::new(48_000, || osc(1).lowpass(1)).unwrap();
    assert!(h.claimed().iter().all(|c| c.offset % 16 == 0), "16-aligned");
}

#[test]
fn claims_follow_the_host_rules() {
    fn err<N: Node>(r: Result<Harness<N>, Error>) -> Option<Error> {
        r.err()
    }
    assert_eq!(
        err(Harness::new(48_000, || osc(1).named("x") + osc(2).named("x"))),
        Some(Error::DUPLICATE_KEY)
    );
    assert_eq!(
        err(Harness::new(48_000, || osc(1).named("osc#1") + osc(2))),
        Some(Error::DUPLICATE_KEY)
    );
    assert_eq!(
        err(Harness::new(48_000, || osc(1).named(""))),
        Some(Error::BAD_KEY)
    );
    let long: &'static str = "k".repeat(257).leak();
    assert_eq!(
        err(Harness::new(48_000, || osc(1).named(long))),
        Some(Error::BAD_KEY)
    );
    let longest: &'static str = "k".repeat(256).leak();
    assert!(Harness::new(48_000, || osc(1).named(longest)).is_ok());
    assert_eq!(
        err(Harness::with(48_000, 128, 1024, || osc(1).delay(1.0, 0.5))),
        Some(Error::REGION_FULL)
    );
    assert_eq!(lel::check_claim(b"k", 32), Err(-3));
    assert_eq!(lel::check_claim(b"k", 3), Err(-3));
    assert_eq!(lel::check_claim(&[0xff], 4), Err(-2));
    assert_eq!(lel::check_claim(b"k", 16), Ok(()));
}

#[test]
fn the_bump_claimer_follows_the_host_rules() {
    let mut mem = vec![0u128; 64];
    let base = std::ptr::NonNull::new(mem.as_mut_ptr() as *mut u8).unwrap();
    // SAFETY: `mem` outlives the claimer and is used by nothing else.
    let mut b = unsafe { lel::Bump::new(base, 1024) };
    use lel::Claimer;
    let a = b.claim(b"a", 100, 16).unwrap();
    assert_eq!(a, base);
    let c = b.claim(b"c", 8, 8).unwrap();
    assert_eq!(c.as_ptr() as usize - base.as_ptr() as usize, 104);
    assert_eq!(b.claim(b"a", 8, 8), Err(-4));
    assert_eq!(b.claim(b"", 8, 8), Err(-2));
    assert_eq!(b.claim(b"d", 8, 5), Err(-3));
    assert_eq!(b.claim(b"e", 4096, 16), Err(-1));
}
