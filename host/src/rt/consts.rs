//! The contract's numbers: error codes, log levels and limits, generated at
//! build time from `wit/constants.txt` (the same table the SDKs' constant
//! files are generated from). Plain constants, read on any thread.

/// One row of `wit/constants.txt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constant {
    /// The table's group: `limit`, `claim-code`, `sdk-code`, `log-level`
    /// or `sdk-default`.
    pub group: &'static str,
    /// kebab-case, as in the table (`max-key-len`).
    pub name: &'static str,
    pub value: i64,
    /// What it means, one line.
    pub doc: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/consts.rs"));

/// The code of `group` (`claim-code` or `sdk-code`) whose value is `code`.
pub fn code(group: &str, code: i32) -> Option<&'static Constant> {
    TABLE
        .iter()
        .find(|c| c.group == group && c.value == code as i64)
}
