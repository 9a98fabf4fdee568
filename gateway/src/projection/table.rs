//! The projection's layout: a fixed row per citizen, its text in one arena,
//! and an index from Pid to row.
//!
//! ```text
//! index   hash table of row numbers (u32), keyed by the row's Pid:
//!         4 B + 1 control byte a bucket, at most 7/8 full
//! rows    Vec<Row>, 48 B each:
//!         pid u64 │ text_at u64 │ date_of_birth u32 │ card_issued_on u32
//!         card_expires_on u32 │ province u32 │ line_len u32 │ flags u32
//!         name_len u16 │ folded_len u16 │ old_id_len u16 │ (2 B unused)
//!         flags: bit 0 female, bit 1 has a permanent residence, bits 8.. status
//! text    one String: name ‖ name folded (lower case, no diacritics: what a
//!         PARTIAL match compares) ‖ old ID number ‖ permanent address line,
//!         per row (a changed citizen's text is appended anew; the old bytes
//!         stay until the next start)
//! ```
//!
//! A look-up hashes the Pid, finds its row number in the index and reads
//! the row (whose Pid confirms it) and its text: about three cache misses.

use hashbrown::HashTable;
use lienthong_proto::{Citizen, name};

use crate::error::{Error, Result};
use crate::verify::Facts;

/// One citizen's fixed facts, and where its text lies.
#[derive(Debug, Clone, Copy)]
struct Row {
    pid: u64,
    text_at: u64,
    date_of_birth: u32,
    card_issued_on: u32,
    card_expires_on: u32,
    province: u32,
    line_len: u32,
    flags: u32,
    name_len: u16,
    folded_len: u16,
    old_id_len: u16,
}

const FEMALE: u32 = 1;
const HAS_PERMANENT: u32 = 1 << 1;
const STATUS_SHIFT: u32 = 8;

/// Every citizen's verification facts.
#[derive(Default)]
pub(super) struct Table {
    index: HashTable<u32>,
    rows: Vec<Row>,
    text: String,
    /// Bytes of `text` no row points at any more.
    stale: usize,
}

impl Table {
    /// Puts `c`'s facts in, replacing what the table held of it. A record
    /// whose name or old ID number is longer than any the registry takes
    /// (over 64 KiB) is refused as damaged.
    pub(super) fn put(&mut self, c: &Citizen) -> Result<()> {
        let (province, line) = c
            .permanent
            .as_ref()
            .map_or((0, ""), |a| (a.province, a.line.as_str()));
        let folded = name::fold_diacritics(&c.full_name);
        let short = |text: &str| u16::try_from(text.len()).map_err(|_| Error::Corrupt);
        let row = Row {
            pid: c.pid,
            text_at: self.text.len() as u64,
            date_of_birth: c.date_of_birth,
            card_issued_on: c.card_issued_on,
            card_expires_on: c.card_expires_on,
            province,
            line_len: u32::try_from(line.len()).map_err(|_| Error::Corrupt)?,
            flags: (if c.female { FEMALE } else { 0 })
                | (if c.permanent.is_some() {
                    HAS_PERMANENT
                } else {
                    0
                })
                | (c.status.min(u32::MAX >> STATUS_SHIFT) << STATUS_SHIFT),
            name_len: short(&c.full_name)?,
            folded_len: short(&folded)?,
            old_id_len: short(&c.old_id_number)?,
        };
        self.text.push_str(&c.full_name);
        self.text.push_str(&folded);
        self.text.push_str(&c.old_id_number);
        self.text.push_str(line);
        match self.find(c.pid) {
            Some(at) => {
                let old = &mut self.rows[at as usize];
                self.stale += old.name_len as usize
                    + old.folded_len as usize
                    + old.old_id_len as usize
                    + old.line_len as usize;
                *old = row;
            }
            None => {
                // A register holds fewer than 2^32 citizens (a country's
                // population is under 2^27).
                let at = u32::try_from(self.rows.len()).expect("fewer than 2^32 citizens");
                self.rows.push(row);
                let rows = &self.rows;
                self.index
                    .insert_unique(hash(c.pid), at, |&r| hash(rows[r as usize].pid));
            }
        }
        Ok(())
    }

    /// Gives back what the build reserved beyond what it used.
    pub(super) fn shrink(&mut self) {
        let rows = &self.rows;
        self.index.shrink_to_fit(|&r| hash(rows[r as usize].pid));
        self.rows.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    /// The row number of `pid`.
    fn find(&self, pid: u64) -> Option<u32> {
        self.index
            .find(hash(pid), |&r| self.rows[r as usize].pid == pid)
            .copied()
    }

    /// The facts of citizen `pid`, if on the register.
    #[cfg(test)]
    pub(super) fn get(&self, pid: u64) -> Option<Facts<'_>> {
        Some(self.facts(self.rows[self.find(pid)? as usize]))
    }

    /// The facts of each of `pids` (`None`: not on the register), in order,
    /// appended to `out`. The look-ups are made in passes — every row
    /// found, then every text touched, then the facts made — so that each
    /// pass's memory reads are independent of one another and the
    /// processor overlaps their cache misses; one look-up after another
    /// waits for each miss in turn.
    pub(super) fn get_many<'a>(&'a self, pids: &[u64], out: &mut Vec<Option<Facts<'a>>>) {
        let found: Vec<Option<Row>> = pids
            .iter()
            .map(|&pid| self.find(pid).map(|at| self.rows[at as usize]))
            .collect();
        let text = self.text.as_bytes();
        for row in found.iter().flatten() {
            // The first byte of its text, read now so that the comparisons
            // after find it in cache.
            std::hint::black_box(text.get(row.text_at as usize));
        }
        out.extend(found.into_iter().map(|row| row.map(|row| self.facts(row))));
    }

    /// The facts in `row`.
    fn facts(&self, row: Row) -> Facts<'_> {
        let at = row.text_at as usize;
        let name_end = at + row.name_len as usize;
        let folded_end = name_end + row.folded_len as usize;
        let old_end = folded_end + row.old_id_len as usize;
        let line_end = old_end + row.line_len as usize;
        Facts {
            full_name: &self.text[at..name_end],
            folded_name: Some(&self.text[name_end..folded_end]),
            date_of_birth: row.date_of_birth,
            female: row.flags & FEMALE != 0,
            old_id_number: &self.text[folded_end..old_end],
            permanent: (row.flags & HAS_PERMANENT != 0)
                .then(|| (row.province, &self.text[old_end..line_end])),
            status: row.flags >> STATUS_SHIFT,
            card_issued_on: row.card_issued_on,
            card_expires_on: row.card_expires_on,
        }
    }

    /// Citizens held.
    pub(super) fn citizens(&self) -> usize {
        self.rows.len()
    }

    /// Bytes held: rows, text (stale included) and the index's table.
    pub(super) fn bytes(&self) -> usize {
        // Buckets are a power of two, at most 7/8 used.
        let buckets = (self.index.capacity() * 8 / 7).next_power_of_two();
        let index = buckets * (std::mem::size_of::<u32>() + 1);
        self.rows.capacity() * std::mem::size_of::<Row>() + self.text.capacity() + index
    }

    /// Bytes of text no row points at any more.
    pub(super) fn stale(&self) -> usize {
        self.stale
    }
}

/// A Pid's hash: one multiplication. Pids are not chosen by callers to
/// collide (only registered ones are stored), and SipHash would cost more
/// than the rest of a look-up.
fn hash(pid: u64) -> u64 {
    let h = pid.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use lienthong_proto::population::Population;

    use super::*;

    #[test]
    fn every_citizen_reads_back_as_put_and_a_change_replaces_it() {
        let population = Population::new(7, 3_000).unwrap();
        let mut table = Table::default();
        let citizens: Vec<Citizen> = population.iter().collect();
        for c in &citizens {
            table.put(c).unwrap();
        }
        assert_eq!(table.citizens(), 3_000);
        for c in &citizens {
            let facts = table.get(c.pid).unwrap();
            assert_eq!(
                facts.folded_name,
                Some(&*name::fold_diacritics(&c.full_name))
            );
            assert_eq!(
                facts,
                Facts::from(c).with_folded_name(facts.folded_name),
                "{}",
                c.pid
            );
        }
        assert_eq!(table.get(1), None);
        // A change: a new name, no permanent residence, deceased.
        let mut changed = citizens[10].clone();
        changed.full_name = "Trần Văn Đổi".into();
        changed.permanent = None;
        changed.status = 1;
        table.put(&changed).unwrap();
        assert_eq!(table.citizens(), 3_000);
        let facts = table.get(changed.pid).unwrap();
        assert_eq!(facts.folded_name, Some("tran van doi"));
        assert_eq!(facts.full_name, "Trần Văn Đổi");
        assert_eq!(facts.permanent, None);
        let facts = table.get(citizens[11].pid).unwrap();
        assert_eq!(facts.full_name, citizens[11].full_name);
        assert!(table.stale() > 0);
    }
}
