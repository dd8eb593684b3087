//! Writing 32-bit float WAV files (offline renders). Non-real-time.

use std::path::Path;

use anyhow::Context as _;

pub type Writer = hound::WavWriter<std::io::BufWriter<std::fs::File>>;

/// Create a 32-bit float WAV file.
///
/// # Errors
/// When the file cannot be created.
pub fn create(path: &Path, channels: u16, sample_rate: u32) -> anyhow::Result<Writer> {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    hound::WavWriter::create(path, spec)
        .with_context(|| format!("{}: cannot create the WAV file", path.display()))
}

/// Append interleaved samples.
///
/// # Errors
/// On a write error.
pub fn write(w: &mut Writer, samples: &[f32]) -> anyhow::Result<()> {
    for &s in samples {
        w.write_sample(s)?;
    }
    Ok(())
}
