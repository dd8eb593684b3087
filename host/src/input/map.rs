//! The MIDI map (`--midi-map FILE`, TOML): which signals hear which MIDI
//! channels, and which controllers set which parameters. Read once at start
//! on the main thread; consulted by the control loop for every MIDI message
//! (`run --midi` and `render --midi`).
//!
//! ```toml
//! # Channels are numbered 1 to 16, as on instruments. A signal not listed
//! # hears every channel.
//! [channels]
//! bass = [1]
//! lead = [2, 3]
//!
//! # A controller sets a parameter, scaled over its range (0 -> min, 127 -> max).
//! [[cc]]
//! controller = 74
//! param = "lead.cutoff"
//! channel = 2          # optional: any channel when left out
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

/// A controller mapped to a parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct CcMapping {
    /// 0..15, or any.
    pub channel: Option<u8>,
    pub controller: u8,
    pub signal: String,
    pub param: String,
}

/// Routing of MIDI messages to signals. The default hears everything and
/// maps no controller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MidiMap {
    /// Signal -> bit mask of the channels it hears.
    channels: BTreeMap<String, u16>,
    cc: Vec<CcMapping>,
    /// MIDI learn: the parameter the next controller will be mapped to.
    learning: Option<(String, String)>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    channels: BTreeMap<String, Vec<i64>>,
    #[serde(default)]
    cc: Vec<CcEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CcEntry {
    controller: i64,
    param: String,
    channel: Option<i64>,
}

impl MidiMap {
    /// Read a map file.
    ///
    /// # Errors
    /// The file, and what is wrong with it (TOML syntax with its line,
    /// channels outside 1..16, controllers outside 0..127, a `param` that is
    /// not `signal.param`).
    pub fn load(path: &Path) -> anyhow::Result<MidiMap> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the MIDI map", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}: not a valid MIDI map", path.display()))
    }

    /// Parse a map from TOML text.
    ///
    /// # Errors
    /// See [`MidiMap::load`].
    pub fn parse(text: &str) -> anyhow::Result<MidiMap> {
        let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let channel = |c: i64, what: &str| -> anyhow::Result<u8> {
            anyhow::ensure!(
                (1..=16).contains(&c),
                "{what}: channel {c} is out of range (MIDI channels are 1 to 16)"
            );
            Ok((c - 1) as u8)
        };
        let mut map = MidiMap::default();
        for (signal, list) in file.channels {
            let mut mask = 0u16;
            for c in list {
                mask |= 1 << channel(c, &format!("[channels] {signal}"))?;
            }
            map.channels.insert(signal, mask);
        }
        for e in file.cc {
            anyhow::ensure!(
                (0..=127).contains(&e.controller),
                "[[cc]] {}: controller {} is out of range (0 to 127)",
                e.param,
                e.controller
            );
            let (signal, param) = e
                .param
                .split_once('.')
                .filter(|(s, p)| !s.is_empty() && !p.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "[[cc]] param = \"{}\": expected \"signal.param\" (for example \"lead.cutoff\")",
                        e.param
                    )
                })?;
            let ch = e
                .channel
                .map(|c| channel(c, &format!("[[cc]] {}", e.param)))
                .transpose()?;
            map.cc.push(CcMapping {
                channel: ch,
                controller: e.controller as u8,
                signal: signal.into(),
                param: param.into(),
            });
        }
        Ok(map)
    }

    /// Does `signal` hear MIDI channel `channel` (0..15)?
    pub fn hears(&self, signal: &str, channel: u8) -> bool {
        self.channels
            .get(signal)
            .is_none_or(|mask| mask & (1 << (channel & 15)) != 0)
    }

    /// MIDI learn: map the next controller that moves to `signal.param`.
    pub fn learn(&mut self, signal: &str, param: &str) {
        self.learning = Some((signal.into(), param.into()));
    }

    /// A controller moved: if a parameter is waiting to learn one, map this
    /// controller (on any channel) to it, in place of the controller's
    /// earlier mappings, and return the new mapping.
    pub fn learned(&mut self, controller: u8) -> Option<&CcMapping> {
        let (signal, param) = self.learning.take()?;
        self.cc.retain(|m| m.controller != controller);
        self.cc.push(CcMapping {
            channel: None,
            controller,
            signal,
            param,
        });
        self.cc.last()
    }

    /// The parameters controller `controller` on `channel` sets.
    pub fn controls(&self, channel: u8, controller: u8) -> impl Iterator<Item = &CcMapping> {
        self.cc
            .iter()
            .filter(move |m| m.controller == controller && m.channel.is_none_or(|c| c == channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_and_controllers() {
        let m = MidiMap::parse(
            "[channels]\nbass = [1]\nlead = [2, 16]\n\n[[cc]]\ncontroller = 74\nparam = \"lead.cutoff\"\nchannel = 2\n\n[[cc]]\ncontroller = 1\nparam = \"bass.drive\"\n",
        )
        .unwrap();
        assert!(m.hears("bass", 0) && !m.hears("bass", 1));
        assert!(m.hears("lead", 1) && m.hears("lead", 15) && !m.hears("lead", 0));
        assert!(m.hears("pad", 0) && m.hears("pad", 9), "unlisted hears all");
        assert_eq!(m.controls(1, 74).count(), 1);
        assert_eq!(m.controls(0, 74).count(), 0);
        assert_eq!(m.controls(5, 1).next().unwrap().param, "drive");
        assert!(MidiMap::default().hears("x", 3));
    }

    #[test]
    fn bad_maps_are_named() {
        let e = |t: &str| format!("{:#}", MidiMap::parse(t).unwrap_err());
        assert!(e("[channels]\nbass = [0]").contains("channel 0 is out of range"));
        assert!(e("[channels]\nbass = [17]").contains("1 to 16"));
        assert!(e("[[cc]]\ncontroller = 128\nparam = \"a.b\"").contains("controller 128"));
        assert!(e("[[cc]]\ncontroller = 1\nparam = \"cutoff\"").contains("signal.param"));
        assert!(e("[chanels]\n").contains("chanels"));
        assert!(e("[channels\n").contains("line 1"));
    }
}
