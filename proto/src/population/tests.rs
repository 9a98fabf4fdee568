//! The synthetic population: determinism, random access, consistency and realistic shares.

use super::*;
use std::collections::HashMap;

fn population() -> Population {
    Population::new(7, 50_000).unwrap()
}

#[test]
fn index_of_pid_inverts_pid() {
    let p = population();
    for index in (0..p.len()).step_by(7) {
        assert_eq!(p.index_of_pid(p.pid(index)), Some(index));
    }
    // A serial next to a citizen's is nobody's (serials are spread out).
    let pid = p.pid(3);
    let other = Pid::from_parts(
        pid.province_code(),
        pid.sex(),
        pid.birth_year(),
        pid.serial() ^ 1,
    )
    .unwrap();
    assert_ne!(p.index_of_pid(other), Some(3));
    let unknown = Pid::from_parts(1, Sex::Male, 1801, 5).unwrap();
    assert_eq!(p.index_of_pid(unknown), None);
}

#[test]
fn deterministic_and_random_access() {
    let a = population();
    let b = population();
    for i in [0, 1, 777, 49_999] {
        assert_eq!(a.citizen(i), b.citizen(i));
    }
    let other = Population::new(8, 50_000).unwrap();
    assert_ne!(
        a.citizen(777).full_name + &a.citizen(778).full_name,
        other.citizen(777).full_name + &other.citizen(778).full_name
    );
}

#[test]
fn pids_unique_ascending_and_consistent_with_birth_facts() {
    let pop = population();
    let mut last = 0;
    for c in pop.iter() {
        assert!(c.pid > last, "Pids ascend");
        last = c.pid;
        let pid = Pid::from_u64(c.pid).unwrap();
        assert!(pid.consistent_with(c.date_of_birth(), Some(c.sex())));
        assert!(c.date_of_birth().unwrap() < pop.reference_date());
    }
}

#[test]
fn families_are_consistent() {
    let pop = population();
    let by_pid: HashMap<u64, Citizen> = pop.iter().map(|c| (c.pid, c)).collect();
    let (mut with_parents, mut married) = (0, 0);
    for c in by_pid.values() {
        if c.father != 0 {
            with_parents += 1;
            let father = &by_pid[&c.father];
            let mother = &by_pid[&c.mother];
            assert!(!father.female && mother.female);
            assert_eq!(father.spouse, mother.pid);
            assert_eq!(mother.spouse, father.pid);
            let family = |n: &str| n.split(' ').next().unwrap().to_owned();
            assert_eq!(family(&c.full_name), family(&father.full_name));
            assert!(father.date_of_birth < c.date_of_birth);
        }
        if c.spouse != 0 {
            married += 1;
            assert_eq!(by_pid[&c.spouse].spouse, c.pid);
            assert_ne!(by_pid[&c.spouse].female, c.female);
        }
        let head = &by_pid[&c.household_head];
        assert_eq!(
            head.household_head, head.pid,
            "a head heads their own household"
        );
        assert_eq!(head.permanent, c.permanent, "households share a residence");
    }
    assert!(with_parents > 10_000, "{with_parents}");
    assert!(married > 15_000, "{married}");
}

#[test]
fn realistic_shares() {
    let pop = population();
    let n = pop.len() as f64;
    let (mut nguyen, mut deceased, mut missing, mut female) = (0, 0, 0, 0);
    let mut provinces = std::collections::HashSet::new();
    for c in pop.iter() {
        nguyen += usize::from(c.full_name.starts_with("Nguyễn "));
        deceased += usize::from(c.life_status() == LifeStatus::Deceased);
        missing += usize::from(c.life_status() == LifeStatus::Missing);
        female += usize::from(c.female);
        provinces.insert(c.birth_province);
        let words: Vec<&str> = c.full_name.split(' ').collect();
        assert_ne!(
            words[words.len() - 2],
            words[words.len() - 1],
            "{}",
            c.full_name
        );
        if c.life_status() == LifeStatus::Deceased {
            assert!(c.died_on().unwrap() >= c.date_of_birth().unwrap());
        }
    }
    let share = |k: usize| k as f64 / n;
    assert!(
        (0.33..0.43).contains(&share(nguyen)),
        "Nguyễn {}",
        share(nguyen)
    );
    assert!(
        (0.02..0.15).contains(&share(deceased)),
        "deceased {}",
        share(deceased)
    );
    assert!(missing > 0 && share(missing) < 0.005);
    assert!((0.48..0.52).contains(&share(female)));
    assert_eq!(provinces.len(), 63);
}

#[test]
fn sizes_add_up() {
    for n in [1, 2, 63, 1_000, 12_345] {
        let pop = Population::new(1, n).unwrap();
        assert_eq!(pop.iter().count() as u64, n);
        assert_eq!(
            pop.buckets.iter().map(|b| u64::from(b.count)).sum::<u64>(),
            n
        );
    }
    assert!(Population::new(1, 0).is_err());
}
