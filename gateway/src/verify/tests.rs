//! Table-driven tests of field matching, verdicts and predicates.

use lienthong_proto::citizen::{Address, Citizen, LifeStatus};
use lienthong_proto::name::NameMatch;
use lienthong_proto::{Date, Pid, Sex};

use super::*;

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

/// Nguyễn Văn An, male, born 2003-05-14 in HCMC, alive, card valid to 2028.
fn registered() -> Citizen {
    Citizen {
        pid: "079203123456".parse::<Pid>().unwrap().as_u64(),
        full_name: "Nguyễn Văn An".into(),
        date_of_birth: 20030514,
        female: false,
        birth_province: 79,
        old_id_number: "025123456".into(),
        card_issued_on: 20210601,
        card_expires_on: 20280514,
        permanent: Some(Address {
            province: 79,
            line: "Số 12, đường Lê Lợi, phường 3".into(),
        }),
        ..Default::default()
    }
}

fn claim() -> Claim {
    Claim::pid_only("079203123456".parse().unwrap())
}

const TODAY: &str = "2026-11-23";

#[test]
fn field_by_field() {
    type Edit = fn(&mut Claim);
    type Case<'a> = (&'a str, Edit, Verdict, &'a [(ClaimedField, bool)]);
    let cases: &[Case] = &[
        ("pid only", |_| {}, Verdict::Match, &[]),
        (
            "all right",
            |c| {
                c.full_name = Some("NGUYỄN  VĂN AN".into());
                c.date_of_birth = Some(date("2003-05-14"));
                c.sex = Some(Sex::Male);
                c.old_id_number = Some("025123456".into());
                c.permanent_residence = Some(ResidenceClaim {
                    province: 79,
                    line: None,
                });
            },
            Verdict::Match,
            &[
                (ClaimedField::PidDigits, true),
                (ClaimedField::FullName, true),
                (ClaimedField::DateOfBirth, true),
                (ClaimedField::Sex, true),
                (ClaimedField::OldIdNumber, true),
                (ClaimedField::PermanentResidence, true),
            ],
        ),
        (
            "wrong name",
            |c| c.full_name = Some("Nguyễn Văn Anh".into()),
            Verdict::Mismatch,
            &[(ClaimedField::FullName, false)],
        ),
        (
            "wrong day of birth, same year",
            |c| c.date_of_birth = Some(date("2003-05-15")),
            Verdict::Mismatch,
            &[
                (ClaimedField::PidDigits, true),
                (ClaimedField::DateOfBirth, false),
            ],
        ),
        (
            "year contradicts the Pid",
            |c| c.date_of_birth = Some(date("2004-05-14")),
            Verdict::Mismatch,
            &[
                (ClaimedField::PidDigits, false),
                (ClaimedField::DateOfBirth, false),
            ],
        ),
        (
            "wrong sex",
            |c| c.sex = Some(Sex::Female),
            Verdict::Mismatch,
            &[(ClaimedField::PidDigits, false), (ClaimedField::Sex, false)],
        ),
        (
            "wrong old id",
            |c| c.old_id_number = Some("025123457".into()),
            Verdict::Mismatch,
            &[(ClaimedField::OldIdNumber, false)],
        ),
        (
            "wrong province",
            |c| {
                c.permanent_residence = Some(ResidenceClaim {
                    province: 1,
                    line: None,
                })
            },
            Verdict::Mismatch,
            &[(ClaimedField::PermanentResidence, false)],
        ),
        (
            "address line with case and spacing",
            |c| {
                c.permanent_residence = Some(ResidenceClaim {
                    province: 79,
                    line: Some("số 12,  đường LÊ LỢI, phường 3".into()),
                })
            },
            Verdict::Match,
            &[(ClaimedField::PermanentResidence, true)],
        ),
    ];
    for (name, edit, verdict, fields) in cases {
        let mut c = claim();
        edit(&mut c);
        let v = verify(
            &c,
            Some(&(&registered()).into()),
            NameMatch::Exact,
            date(TODAY),
        );
        assert_eq!(v.verdict, *verdict, "{name}");
        let got: Vec<(ClaimedField, bool)> =
            v.fields.iter().map(|f| (f.field, f.matched)).collect();
        assert_eq!(got, *fields, "{name}");
        assert_eq!(v.holder_status, Some(LifeStatus::Alive), "{name}");
        assert_eq!(v.card, Some(CardValidity::Valid), "{name}");
    }
}

#[test]
fn partial_names_score() {
    let mut c = claim();
    c.full_name = Some("Nguyen Van An".into());
    let exact = verify(
        &c,
        Some(&(&registered()).into()),
        NameMatch::Exact,
        date(TODAY),
    );
    assert_eq!(exact.verdict, Verdict::Mismatch);
    let partial = verify(
        &c,
        Some(&(&registered()).into()),
        NameMatch::Partial { threshold: 85 },
        date(TODAY),
    );
    assert_eq!(partial.verdict, Verdict::Match);
    assert_eq!(partial.fields[0].score, 100);
    c.full_name = Some("Nguyen Van Ann".into());
    let typo = verify(
        &c,
        Some(&(&registered()).into()),
        NameMatch::Partial { threshold: 95 },
        date(TODAY),
    );
    assert_eq!(typo.verdict, Verdict::Mismatch);
    assert!(
        (85..95).contains(&typo.fields[0].score),
        "{}",
        typo.fields[0].score
    );
}

#[test]
fn not_found_says_nothing_else() {
    let mut c = claim();
    c.full_name = Some("Nguyễn Văn An".into());
    c.predicates = vec![Predicate::Alive];
    let v = verify(&c, None, NameMatch::Exact, date(TODAY));
    assert_eq!(v.verdict, Verdict::NotFound);
    assert!(v.fields.is_empty() && v.predicates.is_empty());
    assert_eq!((v.holder_status, v.card), (None, None));
}

#[test]
fn predicates_and_status() {
    let mut c = claim();
    c.predicates = vec![
        Predicate::AgeAtLeast(18),
        Predicate::AgeAtLeast(24),
        Predicate::PermanentResidentOf(79),
        Predicate::PermanentResidentOf(1),
        Predicate::Alive,
    ];
    let v = verify(
        &c,
        Some(&(&registered()).into()),
        NameMatch::Exact,
        date(TODAY),
    );
    assert_eq!(v.predicates, vec![true, false, true, false, true]);

    let mut deceased = registered();
    deceased.status = LifeStatus::Deceased as u32;
    deceased.died_on = 20250101;
    let v = verify(&c, Some(&(&deceased).into()), NameMatch::Exact, date(TODAY));
    assert_eq!(
        v.verdict,
        Verdict::Match,
        "a claim about a deceased holder can still match"
    );
    assert_eq!(v.holder_status, Some(LifeStatus::Deceased));
    assert_eq!(v.card, Some(CardValidity::Expired));
    assert!(!v.predicates[4]);

    let mut expired = registered();
    expired.card_expires_on = 20250514;
    let v = verify(&c, Some(&(&expired).into()), NameMatch::Exact, date(TODAY));
    assert_eq!(v.card, Some(CardValidity::Expired));
    let mut none = registered();
    none.card_issued_on = 0;
    let v = verify(&c, Some(&(&none).into()), NameMatch::Exact, date(TODAY));
    assert_eq!(v.card, Some(CardValidity::None));
}
