//! `lel::signal!` natively: the exports' runtime claims with the bump
//! claimer, returns the channel count, and renders what the harness renders.

use lel::prelude::*;

lel::signal!(
    osc(440)
        .lowpass(800)
        .tremolo(5, 0.8)
        .delay(0.5, 0.25)
        .pan(0.2),
    state = 1 << 18,
    output = 4096,
);

#[test]
fn signal_macro_exports_work_natively() {
    assert_eq!(lel_state_len(), 1 << 18);
    assert_eq!(lel_init(48_000, 128), 2, "stereo");
    let mut out = vec![0.0f32; 256];
    let mut rendered = Vec::new();
    for block in 0..10u64 {
        assert_ne!(lel_process(128, 2 * block * 128, 0), 0);
        let n = __LEL_RUNTIME.render_into(128, (2 * block + 1) * 128, 0, lel_signal, &mut out);
        assert_eq!(n, 256);
        rendered.extend_from_slice(&out);
    }
    // Blocks 0, 2, 4, ... through `process`, 1, 3, 5, ... copied out: compare
    // the copied ones with the harness.
    let mut h = lel::testing::Harness::new(48_000, lel_signal).unwrap();
    let straight = h.render(20 * 128);
    for block in 0..10 {
        let want = &straight[(2 * block + 1) * 256..(2 * block + 2) * 256];
        assert_eq!(&rendered[block * 256..(block + 1) * 256], want);
    }
    // More frames than the output buffer holds: rejected (natively; wasm32
    // grows memory instead).
    assert_eq!(lel_init(48_000, 4096), lel::Error::OUTPUT_TOO_SMALL.0);
    assert_eq!(lel_init(0, 128), lel::Error::BAD_ARGS.0);
    assert_eq!(lel_init(48_000, 128), 2);
}
