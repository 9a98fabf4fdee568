//! The SQLite registry against real files: what only it does (seeding, reopening); the tests both backends share are in `registry/tests.rs`.

use super::*;
use lienthong_proto::population::Population;

#[test]
fn reopening_keeps_schema_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let pop = Population::new(3, 100).unwrap();
    {
        let store = SqliteRegistry::open(&path).unwrap();
        crate::registry::seed(&store, &pop, None, |_| {}).unwrap();
    }
    let store = SqliteRegistry::open(&path).unwrap();
    assert_eq!(store.count().unwrap(), 100);
    let pids: Vec<Pid> = (0..100).map(|i| pop.pid(i)).collect();
    let got = store.get_many(&pids).unwrap();
    assert!(
        got.iter()
            .zip(0..)
            .all(|(c, i)| c.as_ref() == Some(&pop.citizen(i)))
    );
}
