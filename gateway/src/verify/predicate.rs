//! Yes/no predicates: the minimum a bank or an operator needs to know.

use lienthong_proto::Date;
use lienthong_proto::citizen::LifeStatus;

use super::Facts;

/// A yes/no question about a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predicate {
    /// At least this many full years old.
    AgeAtLeast(u32),
    /// Permanent resident of this province.
    PermanentResidentOf(u16),
    /// Alive.
    Alive,
}

impl Predicate {
    /// Answers the question for `c` on `today`.
    pub fn holds(self, c: &Facts<'_>, today: Date) -> bool {
        match self {
            Self::AgeAtLeast(years) => c
                .date_of_birth()
                .is_some_and(|dob| u32::try_from(dob.age_on(today)).is_ok_and(|age| age >= years)),
            Self::PermanentResidentOf(code) => c
                .permanent
                .is_some_and(|(province, _)| province == u32::from(code)),
            Self::Alive => c.life_status() == LifeStatus::Alive,
        }
    }
}
