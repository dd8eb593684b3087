//! `lel::signal!` natively, with events: the module's event buffer
//! (`events-ptr`/`events-len`) and `process(frames, clock, events)` apply
//! each event at its frame, as on wasm32.

use lel::Event;
use lel::prelude::*;

lel::signal!(value(gate()) * velocity() + param("offset", 0.0).smooth(0.0));

#[test]
fn process_applies_the_event_buffer_at_each_events_frame() {
    assert_eq!(lel_events_len(), 256 * 16, "room for 256 events");
    assert_eq!(lel_events_ptr() % 8, 0, "8-aligned");
    assert_eq!(lel_init(48_000, 128), 1);
    let at = |frame: u32, e: Event| Event { frame, ..e };
    let events = [
        at(10, Event::note_on(60, 0.5)),
        at(20, Event::new(lel::events::kind::PARAM, 0, 0.25)),
        at(30, Event::note_off(61)), // not the last key: ignored
        at(40, Event::note_off(60)),
        at(500, Event::note_on(62, 1.0)), // past the block: its last frame
    ];
    assert_eq!(__LEL_RUNTIME.write_events(&events), 5);
    let mut out = vec![0.0f32; 128];
    assert_eq!(
        __LEL_RUNTIME.render_into(128, 0, 5, lel_signal, &mut out),
        128
    );
    assert_eq!((out[9], out[10], out[19]), (0.0, 0.5, 0.5));
    assert_eq!((out[20], out[39], out[40]), (0.75, 0.75, 0.25));
    assert_eq!((out[126], out[127]), (0.25, 1.25));
    // The next block without events: the note and the value hold.
    assert_eq!(
        __LEL_RUNTIME.render_into(128, 128, 0, lel_signal, &mut out),
        128
    );
    assert!(out.iter().all(|&s| s == 1.25));
}
