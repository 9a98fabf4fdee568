//! A synthetic subscriber base linked to the synthetic population, with
//! injected errors and the truth about every record, so a test can check
//! the verification job's outcome for each subscriber.
//!
//! Each subscriber is drawn as one kind: clean (its holder's real data,
//! written as operators do — as registered, upper case, or upper case
//! without accents), a misspelled name, a wrong date of birth, a wrong sex,
//! a deceased holder, an unknown Pid (well-formed, with a birth year before
//! any citizen's), a malformed Pid, or a person holding one SIM more than
//! the limit. Holders are drawn so that only the over-limit persons exceed
//! the limit, so the truth is exact by construction.

use std::collections::BTreeMap;
use std::io::Write;

use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::population::Population;
use lienthong_proto::{Citizen, Date, Pid, Sex, name, province};

use super::outcome::Outcome;
use super::subscriber::{CSV_HEADER, Format, Subscriber};
use crate::error::{Error, Result};

/// The share of subscribers carrying each kind of error.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub name: f64,
    pub date: f64,
    pub sex: f64,
    pub deceased: f64,
    pub unknown: f64,
    pub malformed: f64,
    /// Share of subscribers that start a person with `limit + 1` SIMs.
    pub over_limit: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            name: 0.02,
            date: 0.01,
            sex: 0.005,
            deceased: 0.01,
            unknown: 0.01,
            malformed: 0.005,
            over_limit: 0.003,
        }
    }
}

/// A small deterministic generator (xorshift*), independent of crate versions.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Walks the population in a scattered order, handing out holders so that
/// nobody but the over-limit persons gets more than `limit` SIMs.
struct Holders<'a> {
    population: &'a Population,
    stride: u64,
    cursor: u64,
    /// SIMs per citizen so far; `u8::MAX` marks an over-limit person.
    sims: Vec<u8>,
    limit: u8,
}

impl<'a> Holders<'a> {
    fn new(population: &'a Population, limit: u8) -> Self {
        let n = population.len();
        let gcd = |mut a: u64, mut b: u64| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let mut stride = 1_000_003 % n.max(2);
        while stride == 0 || gcd(stride, n) != 1 {
            stride += 1;
        }
        Self {
            population,
            stride,
            cursor: 0,
            sims: vec![0; n as usize],
            limit,
        }
    }

    /// The next citizen with `status` who may take `sims` more SIMs.
    fn take(&mut self, status: LifeStatus, sims: u8, fresh: bool) -> Result<Citizen> {
        let n = self.population.len();
        for _ in 0..n.saturating_mul(u64::from(self.limit) + 1) {
            let i = (self.cursor * self.stride) % n;
            self.cursor += 1;
            let held = self.sims[i as usize];
            if held == u8::MAX || (fresh && held > 0) || held + sims > self.limit && !fresh {
                continue;
            }
            let c = self.population.citizen(i);
            if c.life_status() != status || c.date_of_birth().is_none() {
                continue;
            }
            self.sims[i as usize] = if fresh && sims > self.limit {
                u8::MAX
            } else {
                held + sims
            };
            return Ok(c);
        }
        Err(Error::Usage(format!(
            "the population of {n} citizens is too small for this subscriber base"
        )))
    }
}

/// How many subscribers of each outcome were written.
pub type Truth = BTreeMap<Outcome, u64>;

/// The name as an operator might have written it: as registered, upper
/// case, or upper case without accents.
fn written_name(c: &Citizen, d: &mut Draw) -> String {
    match d.below(3) {
        0 => c.full_name.clone(),
        1 => c.full_name.to_uppercase(),
        _ => name::fold_diacritics(&c.full_name).to_uppercase(),
    }
}

/// One letter of the name changed.
fn misspelled(c: &Citizen) -> String {
    let mut folded: Vec<char> = name::fold_diacritics(&c.full_name)
        .to_uppercase()
        .chars()
        .collect();
    if let Some(last) = folded.iter_mut().rev().find(|ch| ch.is_ascii_alphabetic()) {
        *last = if *last == 'Z' {
            'A'
        } else {
            (*last as u8 + 1) as char
        };
    }
    folded.into_iter().collect()
}

fn registration_date(d: &mut Draw) -> Date {
    let from = Date::new(2015, 1, 1).expect("valid").to_days();
    let to = Date::new(2026, 6, 30).expect("valid").to_days();
    Date::from_days(from + d.below((to - from) as u64) as i32).expect("in range")
}

/// What base to generate.
#[derive(Debug, Clone, Copy)]
pub struct BaseOptions<'a> {
    /// The population the subscribers' holders come from.
    pub population: &'a Population,
    /// How many subscribers.
    pub subscribers: u64,
    /// SIMs one person may hold; the over-limit persons hold one more.
    pub limit: u8,
    /// The share of each kind of error.
    pub rates: Rates,
    /// The same seed draws the same base.
    pub seed: u64,
    /// CSV or JSONL.
    pub format: Format,
}

/// Writes `opts.subscribers` records to `base` (CSV or JSONL) and
/// `msisdn,outcome` lines to `truth`; returns the count of each outcome.
/// `progress` is told how many are written every 10,000.
pub fn generate(
    opts: &BaseOptions<'_>,
    base: &mut impl Write,
    truth: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<Truth> {
    let mut sink = Sink::start(opts.format, base, truth)?;
    let mut draw = Drawer {
        d: Draw(opts.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        holders: Holders::new(opts.population, opts.limit),
        limit: opts.limit,
    };
    let rates = &opts.rates;
    let thresholds = [
        rates.name,
        rates.date,
        rates.sex,
        rates.deceased,
        rates.unknown,
        rates.malformed,
        rates.over_limit,
    ];
    while sink.written < opts.subscribers {
        let at = sink.written;
        let drawn = match draw.kind(&thresholds) {
            kind @ 0..=2 => vec![draw.mismatched(kind, at)?],
            3 => vec![draw.deceased(at)?],
            4 => vec![draw.unknown_pid(at)],
            5 => vec![draw.malformed_pid(at)?],
            6 => draw.over_limit(at, opts.subscribers - at)?,
            _ => vec![draw.verified(at)?],
        };
        for (subscriber, outcome) in drawn {
            sink.emit(&subscriber, outcome)?;
        }
        if sink.written.is_multiple_of(10_000) {
            progress(sink.written);
        }
    }
    progress(sink.written);
    Ok(sink.counts)
}

/// Where the base and its truth go, and the count of each outcome.
struct Sink<'w, B: Write, T: Write> {
    format: Format,
    base: &'w mut B,
    truth: &'w mut T,
    counts: Truth,
    written: u64,
}

impl<'w, B: Write, T: Write> Sink<'w, B, T> {
    /// Writes the headers.
    fn start(format: Format, base: &'w mut B, truth: &'w mut T) -> Result<Self> {
        if format == Format::Csv {
            writeln!(base, "{CSV_HEADER}").map_err(io)?;
        }
        writeln!(truth, "msisdn,outcome").map_err(io)?;
        Ok(Self {
            format,
            base,
            truth,
            counts: Truth::new(),
            written: 0,
        })
    }

    /// Writes one subscriber and its outcome.
    fn emit(&mut self, s: &Subscriber, o: Outcome) -> Result<()> {
        match self.format {
            Format::Csv => writeln!(self.base, "{}", s.to_csv()),
            Format::Jsonl => writeln!(
                self.base,
                "{}",
                serde_json::json!({
                    "msisdn": s.msisdn, "pid": s.pid, "full_name": s.full_name,
                    "date_of_birth": s.date_of_birth.to_string(),
                    "sex": if s.sex == Sex::Male { "male" } else { "female" },
                    "registered_on": s.registered_on.to_string(),
                })
            ),
        }
        .map_err(io)?;
        writeln!(self.truth, "{},{o}", s.msisdn).map_err(io)?;
        *self.counts.entry(o).or_default() += 1;
        self.written += 1;
        Ok(())
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Usage(format!("writing the base: {e}"))
}

/// The draws of one base: which kind each subscriber is, and its holder.
struct Drawer<'a> {
    d: Draw,
    holders: Holders<'a>,
    limit: u8,
}

impl Drawer<'_> {
    /// Which kind the next subscriber is: the index of the threshold it
    /// falls under, or `thresholds.len()` for a clean one.
    fn kind(&mut self, thresholds: &[f64]) -> usize {
        let mut x = self.d.unit();
        for (k, t) in thresholds.iter().enumerate() {
            if x < *t {
                return k;
            }
            x -= t;
        }
        thresholds.len()
    }

    /// Subscriber number `k` held by `c`, as the operator wrote it.
    fn of(&mut self, c: &Citizen, k: u64) -> Subscriber {
        Subscriber {
            msisdn: msisdn(k),
            pid: Pid::from_u64(c.pid)
                .expect("population Pids are valid")
                .to_string(),
            full_name: written_name(c, &mut self.d),
            date_of_birth: c.date_of_birth().expect("population dates are valid"),
            sex: c.sex(),
            registered_on: registration_date(&mut self.d),
        }
    }

    /// A living holder's SIM with a misspelled name (`kind` 0), a wrong
    /// date of birth (1) or the wrong sex (2).
    fn mismatched(&mut self, kind: usize, k: u64) -> Result<(Subscriber, Outcome)> {
        let c = self.holders.take(LifeStatus::Alive, 1, false)?;
        let mut s = self.of(&c, k);
        let outcome = match kind {
            0 => {
                s.full_name = misspelled(&c);
                Outcome::NameMismatch
            }
            1 => {
                let dob = s.date_of_birth;
                let shift = 1 + self.d.below(20) as i32;
                let later = Date::from_days(dob.to_days() + shift).expect("in range");
                s.date_of_birth = if later.year() == dob.year() {
                    later
                } else {
                    Date::from_days(dob.to_days() - shift).expect("in range")
                };
                Outcome::DateMismatch
            }
            _ => {
                s.sex = if s.sex == Sex::Male {
                    Sex::Female
                } else {
                    Sex::Male
                };
                Outcome::SexMismatch
            }
        };
        Ok((s, outcome))
    }

    /// A deceased holder's SIM.
    fn deceased(&mut self, k: u64) -> Result<(Subscriber, Outcome)> {
        let c = self.holders.take(LifeStatus::Deceased, 1, false)?;
        Ok((self.of(&c, k), Outcome::Deceased))
    }

    /// A well-formed Pid born before any citizen of the synthetic
    /// population: nobody's.
    fn unknown_pid(&mut self, k: u64) -> (Subscriber, Outcome) {
        let d = &mut self.d;
        let year = 1905 + d.below(10) as i32;
        let sex = if d.below(2) == 0 {
            Sex::Male
        } else {
            Sex::Female
        };
        let prov = province::PROVINCES[d.below(63) as usize].code;
        let pid = Pid::from_parts(prov, sex, year, d.below(1_000_000) as u32).expect("valid parts");
        let dob = Date::new(year, 1 + d.below(12) as u32, 1 + d.below(28) as u32).expect("valid");
        let s = Subscriber {
            msisdn: msisdn(k),
            pid: pid.to_string(),
            full_name: "NGUYEN VAN AN".into(),
            date_of_birth: dob,
            sex,
            registered_on: registration_date(d),
        };
        (s, Outcome::UnknownPid)
    }

    /// A living holder's SIM whose Pid was written wrong: cut short, too
    /// long, a letter for a digit, or an unknown province.
    fn malformed_pid(&mut self, k: u64) -> Result<(Subscriber, Outcome)> {
        let c = self.holders.take(LifeStatus::Alive, 0, false)?;
        let mut s = self.of(&c, k);
        s.pid = match self.d.below(4) {
            0 => s.pid[..11].to_owned(),
            1 => format!("{}0", s.pid),
            2 => format!("{}O{}", &s.pid[..5], &s.pid[6..]),
            _ => format!("003{}", &s.pid[3..]),
        };
        Ok((s, Outcome::MalformedPid))
    }

    /// A fresh person with `limit + 1` SIMs (at most `room` of them): the
    /// latest registered is over the limit.
    fn over_limit(&mut self, k: u64, room: u64) -> Result<Vec<(Subscriber, Outcome)>> {
        let limit = self.limit;
        let c = self.holders.take(LifeStatus::Alive, limit + 1, true)?;
        let mut dates: Vec<Date> = (0..=limit)
            .map(|_| registration_date(&mut self.d))
            .collect();
        dates.sort();
        dates.dedup();
        let mut out = Vec::new();
        for (j, date) in dates.iter().enumerate().take(room as usize) {
            let mut s = self.of(&c, k + j as u64);
            s.registered_on = *date;
            let o = if j >= usize::from(limit) {
                Outcome::OverLimit
            } else {
                Outcome::Verified
            };
            out.push((s, o));
        }
        Ok(out)
    }

    /// A living holder's SIM, as registered.
    fn verified(&mut self, k: u64) -> Result<(Subscriber, Outcome)> {
        let c = self.holders.take(LifeStatus::Alive, 1, false)?;
        Ok((self.of(&c, k), Outcome::Verified))
    }
}

/// Subscriber number `k`'s phone number.
fn msisdn(k: u64) -> String {
    format!("849{k:08}")
}
