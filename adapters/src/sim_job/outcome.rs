//! What re-verification concludes about one subscriber.

use std::fmt;
use std::str::FromStr;

/// The outcome for one subscriber, in precedence order: the first that
/// applies is the one reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The ID number is not a well-formed Pid.
    MalformedPid,
    /// No citizen has the Pid.
    UnknownPid,
    /// The holder is deceased.
    Deceased,
    /// The registered name differs (beyond case, spacing and accents).
    NameMismatch,
    /// The date of birth differs.
    DateMismatch,
    /// The sex differs.
    SexMismatch,
    /// More SIMs on this person than the rule allows; this one is beyond it.
    OverLimit,
    /// Everything matches.
    Verified,
}

impl Outcome {
    /// Every outcome, in precedence order.
    pub const ALL: [Outcome; 8] = [
        Self::MalformedPid,
        Self::UnknownPid,
        Self::Deceased,
        Self::NameMismatch,
        Self::DateMismatch,
        Self::SexMismatch,
        Self::OverLimit,
        Self::Verified,
    ];

    /// The stable name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::MalformedPid => "malformed_pid",
            Self::UnknownPid => "unknown_pid",
            Self::Deceased => "deceased",
            Self::NameMismatch => "name_mismatch",
            Self::DateMismatch => "date_mismatch",
            Self::SexMismatch => "sex_mismatch",
            Self::OverLimit => "over_limit",
            Self::Verified => "verified",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| format!("unknown outcome {s:?}"))
    }
}
