//! The daemon's event log: `<state dir>/events.log`, one JSON object per line, appended with a
//! single write each (so lines from two writers never interleave) and never rewritten.
//! `xm log` reads it; a line that does not parse is shown as such, not fatal.

use std::io::Write;
use std::path::{Path, PathBuf};

use hypervisor::DomId;
use serde::{Deserialize, Serialize};

use super::{io_err, unix_now, StateError};

/// One thing the daemon saw and what it did about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub time: String,
    /// The domain's name (`??` when it has none).
    pub domain: String,
    pub domid: Option<DomId>,
    /// What happened: `started`, `adopted`, `poweroff`, `reboot`, `crash`, `watchdog`,
    /// `suspend`, `soft-reset`, `gone`, `daemon-start`, `daemon-stop`...
    pub event: String,
    /// The action applied (`destroy`, `restart`, `preserve`, ..., `none`).
    pub action: String,
    /// How it went, in words.
    pub outcome: String,
}

impl Event {
    /// An event stamped now.
    pub fn now(
        domain: &str,
        domid: Option<DomId>,
        event: &str,
        action: &str,
        outcome: impl Into<String>,
    ) -> Event {
        Event {
            time: format_utc(unix_now()),
            domain: domain.to_string(),
            domid,
            event: event.to_string(),
            action: action.to_string(),
            outcome: outcome.into(),
        }
    }

    /// One human line: `TIME  NAME (id N)  EVENT -> ACTION: OUTCOME`.
    pub fn human(&self) -> String {
        let id = self.domid.map_or(String::new(), |d| format!(" (id {d})"));
        format!(
            "{}  {}{}  {} -> {}: {}",
            self.time, self.domain, id, self.event, self.action, self.outcome
        )
    }
}

/// `<state dir>/events.log`.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    pub fn new(path: impl Into<PathBuf>) -> EventLog {
        EventLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as one line (one `write`, `O_APPEND`).
    pub fn append(&self, event: &Event) -> Result<(), StateError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut line = serde_json::to_vec(event).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        file.write_all(&line).map_err(io_err(&self.path))
    }
}

/// One line of the log: an event, or the text of a line that is not one.
#[derive(Debug, Clone, PartialEq)]
pub enum LogLine {
    Event(Event),
    Unreadable(String),
}

/// Parses the log's lines (empty lines skipped).
pub fn parse_lines(text: &str) -> Vec<LogLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<Event>(l) {
            Ok(e) => LogLine::Event(e),
            Err(_) => LogLine::Unreadable(l.to_string()),
        })
        .collect()
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn format_utc(unix: f64) -> String {
    let millis_total = (unix.max(0.0) * 1000.0) as u64;
    let secs = millis_total / 1000;
    let millis = millis_total % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_instants() {
        assert_eq!(format_utc(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400.5), "2000-02-29T00:00:00.500Z");
        assert_eq!(format_utc(1_795_651_200.0), "2026-11-26T00:00:00.000Z");
    }

    #[test]
    fn appended_events_read_back_and_bad_lines_are_kept_as_text() {
        let dir = tempdir("events");
        let log = EventLog::new(dir.join("events.log"));
        let a = Event::now("web", Some(3), "reboot", "restart", "restarted as domain 4");
        log.append(&a).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        let b = Event::now("web", Some(4), "poweroff", "destroy", "destroyed");
        log.append(&b).unwrap();
        let lines = parse_lines(&std::fs::read_to_string(log.path()).unwrap());
        assert_eq!(
            lines,
            vec![
                LogLine::Event(a),
                LogLine::Unreadable("not json".into()),
                LogLine::Event(b)
            ]
        );
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xm-rs-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
