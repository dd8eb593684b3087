//! `--record OUT.wav`: exactly what was played, written by a non-real-time
//! thread that drains a preallocated ring the audio callback fills.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Recorder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<u64>>,
    pub path: PathBuf,
}

impl Recorder {
    /// Create the WAV file and start the writer; returns the ring's producer
    /// for the audio callback. The ring holds `seconds` of audio.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn start(
        path: PathBuf,
        channels: u16,
        sample_rate: u32,
        seconds: u32,
    ) -> anyhow::Result<(Recorder, rtrb::Producer<f32>)> {
        let mut writer = crate::wav::create(&path, channels, sample_rate)?;
        let (tx, mut rx) = rtrb::RingBuffer::<f32>::new(
            sample_rate as usize * channels as usize * seconds as usize,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lel-record".into())
            .spawn(move || {
                let mut written = 0u64;
                loop {
                    // Read the stop flag first: what was pushed before it was set
                    // is drained below before leaving.
                    let stopping = stop2.load(Ordering::Acquire) || rx.is_abandoned();
                    let n = rx.slots();
                    if n > 0 {
                        let chunk = rx.read_chunk(n).expect("n slots are readable");
                        let (a, b) = chunk.as_slices();
                        for &s in a.iter().chain(b) {
                            writer.write_sample(s)?;
                        }
                        chunk.commit_all();
                        written += n as u64;
                    } else if stopping {
                        break;
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                writer.finalize()?;
                Ok(written)
            })?;
        Ok((Recorder { stop, thread, path }, tx))
    }

    /// Drain what is left and finish the file. Returns the samples written.
    ///
    /// # Errors
    /// On a write error.
    pub fn finish(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the recorder thread panicked"))?
    }
}
