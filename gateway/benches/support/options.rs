//! The exchange bench's command line.

/// What the bench is asked to measure.
pub struct Options {
    /// Citizens on the registry (seeded once per size).
    pub citizens: u64,
    /// Seconds each server is measured, per phase.
    pub seconds: u64,
    /// `unary`, `batch` or `all`.
    pub phase: String,
    /// VerifyIdentity calls in flight, spread over the channels.
    pub in_flight: usize,
    /// Client connections to each server, as that many agencies would
    /// open (all of them with the bench agency's certificate).
    pub channels: usize,
    /// Rounds of every phase, one after the other (the medians are printed).
    pub rounds: usize,
    /// Names as an operator writes them, matched PARTIAL (`--names written`).
    pub written_names: bool,
    /// A PostgreSQL database for a fourth server, the gateway over the
    /// shared store (`--store postgres://…`).
    pub store: Option<String>,
}

/// The median of `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The options given on the command line, defaults for the rest.
pub fn options() -> Options {
    let mut o = Options {
        citizens: 1_000_000,
        seconds: 10,
        phase: "all".into(),
        in_flight: 64,
        channels: 1,
        rounds: 1,
        written_names: false,
        store: None,
    };
    let arg = super::args::value;
    if let Some(n) = arg("--citizens") {
        o.citizens = n.parse().expect("--citizens N");
    }
    if let Some(s) = arg("--seconds") {
        o.seconds = s.parse().expect("--seconds S");
    }
    if let Some(phase) = arg("--phase") {
        o.phase = phase;
    }
    if let Some(n) = arg("--in-flight") {
        o.in_flight = n.parse().expect("--in-flight N");
    }
    if let Some(n) = arg("--channels") {
        o.channels = n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .expect("--channels N (1 or more)");
    }
    if let Some(n) = arg("--rounds") {
        o.rounds = n.parse().expect("--rounds N");
    }
    o.store = arg("--store");
    if let Some(names) = arg("--names") {
        o.written_names = match names.as_str() {
            "registered" => false,
            "written" => true,
            _ => panic!("--names registered|written"),
        };
    }
    o
}
