//! The registry writes against a real SQLite registry.

use std::sync::Arc;

use lienthong_proto::citizen::{Address, LifeStatus, Marital};
use lienthong_proto::population::Population;
use lienthong_proto::{Citizen, Date, Pid, Sex};

use super::*;
use crate::error::Reason;
use crate::policy::Policy;
use crate::registry::{Outbox, SqliteRegistry, seed};

const POLICY: &str = r#"
[agencies.civil]
name = "Civil registry"
roles = ["civil_registry"]
[agencies.police]
name = "Residence police"
roles = ["residence_registry", "card_issuer"]
[agencies.bank]
name = "A bank"
roles = ["consumer"]
"#;

struct Fixture {
    registrar: Registrar,
    store: Arc<SqliteRegistry>,
    population: Population,
    _dir: tempfile::TempDir,
    next: u32,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteRegistry::open(dir.path().join("registry.db")).unwrap());
        let population = Population::new(7, 2_000).unwrap();
        seed(&store, &population, None, |_| {}).unwrap();
        let policy = LivePolicy::new(Policy::parse(POLICY).unwrap());
        Self {
            registrar: Registrar::new(policy, store.clone()),
            store,
            population,
            _dir: dir,
            next: 0,
        }
    }

    fn request(&mut self) -> WriteRequest {
        self.next += 1;
        WriteRequest {
            request_id: format!("req-{}", self.next),
            fingerprint: [self.next as u8; 32],
        }
    }

    async fn record<C: Change>(&mut self, agency: &str, change: C) -> Result<Written> {
        let request = self.request();
        self.registrar.record(agency, request, change).await
    }

    fn find(&self, pred: impl Fn(&Citizen) -> bool) -> Citizen {
        self.population
            .iter()
            .find(|c| pred(c))
            .expect("the population has one")
    }

    fn get(&self, pid: u64) -> Citizen {
        self.store
            .get(Pid::from_u64(pid).unwrap())
            .unwrap()
            .unwrap()
    }
}

fn pid(c: &Citizen) -> Pid {
    Pid::from_u64(c.pid).unwrap()
}

fn adult_single(c: &Citizen) -> bool {
    c.life_status() == LifeStatus::Alive
        && c.marital_status() == Marital::Single
        && c.date_of_birth().unwrap().year() < 1990
}

fn reason(r: Result<Written>) -> Reason {
    r.expect_err("the write is refused").reason()
}

#[tokio::test]
async fn a_death_is_recorded_once_and_widows_the_spouse() {
    let mut f = Fixture::new();
    let married = f.find(|c| {
        c.marital_status() == Marital::Married
            && c.life_status() == LifeStatus::Alive
            && c.spouse != 0
    });
    let spouse = f.get(married.spouse);
    let death = Death {
        pid: pid(&married),
        died_on: Date::new(2026, 1, 2).unwrap(),
    };
    let written = f.record("civil", death.clone()).await.unwrap();
    assert!(matches!(written, Written::Committed(_)));
    let dead = f.get(married.pid);
    assert_eq!(dead.life_status(), LifeStatus::Deceased);
    assert_eq!(dead.died_on, 20260102);
    if spouse.life_status() == LifeStatus::Alive {
        assert_eq!(f.get(married.spouse).marital_status(), Marital::Widowed);
    }
    assert_eq!(
        reason(f.record("civil", death).await),
        Reason::CitizenDeceased
    );
    // Any other change to a deceased citizen is refused the same way.
    let rename = NameChange {
        pid: pid(&married),
        full_name: "Lê Văn Mới".into(),
    };
    assert_eq!(
        reason(f.record("civil", rename).await),
        Reason::CitizenDeceased
    );
}

#[tokio::test]
async fn dates_are_checked() {
    let mut f = Fixture::new();
    let c = f.find(adult_single);
    let before_birth = Death {
        pid: pid(&c),
        died_on: Date::new(1900, 1, 1).unwrap(),
    };
    assert_eq!(
        reason(f.record("civil", before_birth).await),
        Reason::ArgumentInvalid
    );
    let future = Death {
        pid: pid(&c),
        died_on: Date::today().add_years(1).unwrap(),
    };
    assert_eq!(
        reason(f.record("civil", future).await),
        Reason::ArgumentInvalid
    );
    assert_eq!(f.get(c.pid).life_status(), LifeStatus::Alive);
}

#[tokio::test]
async fn a_marriage_needs_two_living_unmarried_people() {
    let mut f = Fixture::new();
    let a = f.find(|c| adult_single(c) && !c.female);
    let b = f.find(|c| adult_single(c) && c.female);
    let on = Date::new(2026, 3, 8).unwrap();
    let marriage = |x: &Citizen, y: &Citizen| Marriage {
        pid: pid(x),
        spouse: pid(y),
        married_on: on,
    };
    assert_eq!(
        reason(f.record("civil", marriage(&a, &a)).await),
        Reason::ArgumentInvalid
    );
    f.record("civil", marriage(&a, &b)).await.unwrap();
    assert_eq!((f.get(a.pid).spouse, f.get(b.pid).spouse), (b.pid, a.pid));
    assert_eq!(f.get(b.pid).marital_status(), Marital::Married);
    let c = f.find(|c| adult_single(c) && c.pid != a.pid && c.pid != b.pid);
    let err = f.record("civil", marriage(&c, &a)).await.unwrap_err();
    assert_eq!(err.reason(), Reason::AlreadyMarried);
    assert!(err.to_string().starts_with("spouse_pid:"), "{err}");
    let dead = f.find(|c| c.life_status() == LifeStatus::Deceased);
    assert_eq!(
        reason(f.record("civil", marriage(&c, &dead)).await),
        Reason::CitizenDeceased
    );
}

fn birth(father: Option<Pid>, mother: Option<Pid>) -> Birth {
    Birth {
        full_name: "Nguyễn Thị Mai".into(),
        date_of_birth: Date::new(2026, 2, 14).unwrap(),
        sex: Sex::Female,
        birth_province: 1,
        native_province: 1,
        ethnicity: "Kinh".into(),
        nationality: "Việt Nam".into(),
        father,
        mother,
        residence: None,
    }
}

#[tokio::test]
async fn a_birth_gets_the_next_pid_and_links_its_parents() {
    let mut f = Fixture::new();
    let father = f.find(|c| adult_single(c) && !c.female);
    let mother = f.find(|c| adult_single(c) && c.female);
    let first = f
        .record("civil", birth(Some(pid(&father)), Some(pid(&mother))))
        .await
        .unwrap();
    let second = f
        .record("civil", birth(None, Some(pid(&mother))))
        .await
        .unwrap();
    let (a, b) = (first.receipt().pid, second.receipt().pid);
    assert_eq!(a.to_string(), "001326000000");
    assert_eq!(b.serial(), a.serial() + 1);
    assert!(a.consistent_with(Date::new(2026, 2, 14).ok(), Some(Sex::Female)));
    let child = f.get(a.as_u64());
    assert_eq!((child.father, child.mother), (father.pid, mother.pid));
    assert_eq!(child.permanent, mother.permanent);
    assert_eq!(child.full_name, "Nguyễn Thị Mai");
}

#[tokio::test]
async fn a_birth_with_unknown_or_impossible_parents_is_refused() {
    let mut f = Fixture::new();
    let unknown = Pid::from_parts(1, Sex::Male, 1801, 999_999).unwrap();
    assert_eq!(
        reason(f.record("civil", birth(Some(unknown), None)).await),
        Reason::ParentNotFound
    );
    let woman = f.find(|c| adult_single(c) && c.female);
    let err = f
        .record("civil", birth(Some(pid(&woman)), None))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::ParentInvalid);
    assert!(err.to_string().starts_with("father_pid:"), "{err}");
    let young = f.find(|c| c.female && c.date_of_birth().unwrap().year() > 1960);
    let mut too_early = birth(None, Some(pid(&young)));
    too_early.date_of_birth = Date::new(1950, 1, 1).unwrap();
    assert_eq!(
        reason(f.record("civil", too_early).await),
        Reason::ParentInvalid
    );
    assert_eq!(
        reason(f.record("civil", birth(None, None)).await),
        Reason::ArgumentInvalid
    );
    let mut with_home = birth(None, None);
    with_home.residence = Some(Address {
        province: 79,
        line: "12 Lê Lợi, Bến Nghé, Quận 1".into(),
    });
    f.record("civil", with_home).await.unwrap();
}

#[tokio::test]
async fn a_retry_returns_the_first_receipt_and_writes_nothing() {
    let f = Fixture::new();
    let c = f.find(adult_single);
    let request = WriteRequest {
        request_id: "office-7/2026/0001".into(),
        fingerprint: [9; 32],
    };
    let change = || ResidenceChange {
        pid: pid(&c),
        kind: ResidenceKind::Temporary,
        residence: Address {
            province: 48,
            line: "3 Bạch Đằng, Hải Châu".into(),
        },
    };
    let first = f
        .registrar
        .record("police", request.clone(), change())
        .await
        .unwrap();
    let again = f
        .registrar
        .record("police", request.clone(), change())
        .await
        .unwrap();
    assert!(matches!(first, Written::Committed(_)));
    assert_eq!(again, Written::Replayed(first.receipt().clone()));
    assert_eq!(f.store.lag().unwrap().last_seq, 1);
    // The same key for a different request is refused, and changes nothing.
    let reused = WriteRequest {
        fingerprint: [8; 32],
        ..request.clone()
    };
    assert_eq!(
        f.registrar
            .record("police", reused, change())
            .await
            .unwrap_err()
            .reason(),
        Reason::RequestIdReused
    );
    // Keys are per agency: another agency may use the same one.
    let card = CardIssue {
        pid: pid(&c),
        issued_on: Date::new(2026, 1, 5).unwrap(),
    };
    let theirs = f
        .registrar
        .record(
            "police",
            WriteRequest {
                request_id: "x".into(),
                fingerprint: [1; 32],
            },
            card,
        )
        .await
        .unwrap();
    assert_eq!(theirs.receipt().seq, 2);
    assert_eq!(f.store.lag().unwrap().last_seq, 2);
}

#[tokio::test]
async fn each_write_belongs_to_its_role() {
    let mut f = Fixture::new();
    let c = f.find(adult_single);
    let death = Death {
        pid: pid(&c),
        died_on: Date::new(2026, 1, 2).unwrap(),
    };
    assert_eq!(
        reason(f.record("police", death.clone()).await),
        Reason::RoleNotPermitted
    );
    assert_eq!(
        reason(f.record("bank", death.clone()).await),
        Reason::RoleNotPermitted
    );
    assert_eq!(
        reason(f.record("nobody", death).await),
        Reason::AgencyUnknown
    );
    let card = CardIssue {
        pid: pid(&c),
        issued_on: Date::new(2026, 1, 5).unwrap(),
    };
    assert_eq!(
        reason(f.record("civil", card).await),
        Reason::RoleNotPermitted
    );
    assert_eq!(f.store.lag().unwrap().last_seq, 0);
    let bad = WriteRequest {
        request_id: "has space".into(),
        fingerprint: [0; 32],
    };
    let rename = NameChange {
        pid: pid(&c),
        full_name: "Phạm Thị Hoa".into(),
    };
    assert_eq!(
        f.registrar
            .record("civil", bad, rename)
            .await
            .unwrap_err()
            .reason(),
        Reason::ArgumentInvalid
    );
}

#[test]
fn card_expiry_follows_the_renewal_ages() {
    let born = Date::new(2000, 5, 1).unwrap();
    let on = |y, m, d| card::expiry(born, Date::new(y, m, d).unwrap());
    assert_eq!(on(2021, 1, 1), Date::new(2025, 5, 1).ok());
    // Within two years of the 25th birthday: valid to the 40th.
    assert_eq!(on(2024, 1, 1), Date::new(2040, 5, 1).ok());
    assert_eq!(on(2059, 1, 1), None);
}

#[tokio::test]
async fn the_law_on_marriage_and_on_parents_is_kept() {
    let mut f = Fixture::new();
    // A marriage below the legal age: 20 for men, 18 for women, on the day.
    let woman = f.find(|c| adult_single(c) && c.female);
    let boy = f.find(|c| {
        !c.female
            && c.life_status() == LifeStatus::Alive
            && c.marital_status() == Marital::Single
            && c.date_of_birth().unwrap().year() == 2007
    });
    let born = boy.date_of_birth().unwrap();
    let marriage = |on: Date| Marriage {
        pid: pid(&woman),
        spouse: pid(&boy),
        married_on: on,
    };
    let day_before_20 = Date::from_days(born.add_years(20).unwrap().to_days() - 1).unwrap();
    let err = f
        .record(
            "civil",
            marriage(day_before_20.min(Date::new(2026, 11, 1).unwrap())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::UnderMarriageAge);
    assert!(err.to_string().starts_with("spouse_pid:"), "{err}");
    let girl = f.find(|c| {
        c.female
            && c.life_status() == LifeStatus::Alive
            && c.marital_status() == Marital::Single
            && c.date_of_birth().unwrap().year() == 2009
    });
    let man = f.find(|c| adult_single(c) && !c.female);
    let err = f
        .record(
            "civil",
            Marriage {
                pid: pid(&man),
                spouse: pid(&girl),
                married_on: Date::new(2026, 11, 1).unwrap(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::UnderMarriageAge);

    // A child born more than ten months after its father's death, or after
    // its mother's, has no such parent; ten months to the day is allowed.
    let dead_man = f.find(|c| !c.female && c.died_on().is_some_and(|d| d.year() >= 2024));
    let died = dead_man.died_on().unwrap();
    let mut posthumous = birth(Some(pid(&dead_man)), None);
    posthumous.residence = dead_man.permanent.clone();
    posthumous.date_of_birth = super::birth::ten_months_after(died);
    f.record("civil", posthumous.clone()).await.unwrap();
    posthumous.date_of_birth = Date::from_days(posthumous.date_of_birth.to_days() + 1).unwrap();
    let err = f.record("civil", posthumous).await.unwrap_err();
    assert_eq!(err.reason(), Reason::ParentInvalid);
    assert!(err.to_string().contains("ten months"), "{err}");
    let dead_woman = f.find(|c| c.female && c.died_on().is_some_and(|d| d.year() >= 2020));
    let mut orphan = birth(None, Some(pid(&dead_woman)));
    orphan.date_of_birth = Date::from_days(dead_woman.died_on().unwrap().to_days() + 1).unwrap();
    let err = f.record("civil", orphan).await.unwrap_err();
    assert_eq!(err.reason(), Reason::ParentInvalid);
    assert!(err.to_string().contains("died before the birth"), "{err}");
}

#[test]
fn ten_months_after_clamps_to_the_month_end() {
    let d = |y, m, day| Date::new(y, m, day).unwrap();
    assert_eq!(
        super::birth::ten_months_after(d(2025, 3, 15)),
        d(2026, 1, 15)
    );
    assert_eq!(
        super::birth::ten_months_after(d(2025, 4, 30)),
        d(2026, 2, 28)
    );
    assert_eq!(
        super::birth::ten_months_after(d(2024, 12, 31)),
        d(2025, 10, 31)
    );
}
