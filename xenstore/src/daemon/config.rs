//! Daemon limits (quotas) and their config file.
//!
//! The file is `key = value` lines, `#` comments; keys are the names below. Defaults are the
//! upstream C xenstored defaults.

use std::path::Path;

/// Per-domain limits. They apply to unprivileged domains only, as upstream (dom0 and the
/// tools on the socket are trusted), except `max_queued_output_bytes`, which bounds memory for
/// every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes a domain may own (upstream `-N`/quota "nodes": 1000).
    pub max_nodes: usize,
    /// Bytes per node: value, child names and permissions (upstream "node-size": 2048).
    pub max_node_size: usize,
    /// Watches per connection (upstream "watches": 128).
    pub max_watches: usize,
    /// Open transactions per connection (upstream "transactions": 10).
    pub max_transactions: usize,
    /// Nodes one transaction may touch (upstream "transaction-nodes": 1024).
    pub max_transaction_nodes: usize,
    /// Requests whose replies are not yet consumed before we stop reading a connection
    /// (upstream "outstanding": 20).
    pub max_outstanding: usize,
    /// Permission entries per node (upstream "permissions": 5).
    pub max_permissions: usize,
    /// Path length below `/local/domain/<id>/` (upstream "path-max": 2048).
    pub max_relative_path: usize,
    /// Bytes of replies and watch events queued for one connection; watch events beyond it
    /// are dropped (and logged) so a client that never reads cannot exhaust our memory.
    pub max_queued_output_bytes: usize,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            max_nodes: 1000,
            max_node_size: 2048,
            max_watches: 128,
            max_transactions: 10,
            max_transaction_nodes: 1024,
            max_outstanding: 20,
            max_permissions: 5,
            max_relative_path: crate::wire::REL_PATH_MAX,
            max_queued_output_bytes: 1 << 20,
        }
    }
}

/// A config file problem, naming file, line and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read xenstored config {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not `key = value`.
    #[error("{path}:{line}: expected `key = value`, found {text:?}")]
    Syntax {
        /// File.
        path: String,
        /// Line number (1-based).
        line: usize,
        /// The offending text.
        text: String,
    },
    /// Unknown key.
    #[error("{path}:{line}: unknown quota {key:?} (known: {known})")]
    UnknownKey {
        /// File.
        path: String,
        /// Line number.
        line: usize,
        /// Key.
        key: String,
        /// Known keys.
        known: String,
    },
    /// Value is not a non-negative integer.
    #[error("{path}:{line}: value of {key} must be a non-negative integer, found {value:?}")]
    BadValue {
        /// File.
        path: String,
        /// Line number.
        line: usize,
        /// Key.
        key: String,
        /// Value text.
        value: String,
    },
}

const KEYS: [&str; 9] = [
    "nodes",
    "node-size",
    "watches",
    "transactions",
    "transaction-nodes",
    "outstanding",
    "permissions",
    "path-max",
    "queued-output-bytes",
];

impl Quotas {
    fn slot(&mut self, key: &str) -> Option<&mut usize> {
        Some(match key {
            "nodes" => &mut self.max_nodes,
            "node-size" => &mut self.max_node_size,
            "watches" => &mut self.max_watches,
            "transactions" => &mut self.max_transactions,
            "transaction-nodes" => &mut self.max_transaction_nodes,
            "outstanding" => &mut self.max_outstanding,
            "permissions" => &mut self.max_permissions,
            "path-max" => &mut self.max_relative_path,
            "queued-output-bytes" => &mut self.max_queued_output_bytes,
            _ => return None,
        })
    }

    /// Sets one quota by its config name (also used for `--quota key=value`).
    pub fn set(&mut self, key: &str, value: usize) -> bool {
        match self.slot(key) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &str) -> Result<Quotas, ConfigError> {
        let mut q = Quotas::default();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                return Err(ConfigError::Syntax {
                    path: path.into(),
                    line,
                    text: raw.into(),
                });
            };
            let (key, value) = (key.trim(), value.trim());
            let parsed: usize = value.parse().map_err(|_| ConfigError::BadValue {
                path: path.into(),
                line,
                key: key.into(),
                value: value.into(),
            })?;
            if !q.set(key, parsed) {
                return Err(ConfigError::UnknownKey {
                    path: path.into(),
                    line,
                    key: key.into(),
                    known: KEYS.join(", "),
                });
            }
        }
        Ok(q)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Quotas, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Quotas::parse(&text, &shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_upstream_ones() {
        let q = Quotas::default();
        assert_eq!(
            (q.max_nodes, q.max_node_size, q.max_watches),
            (1000, 2048, 128)
        );
        assert_eq!(
            (
                q.max_transactions,
                q.max_transaction_nodes,
                q.max_outstanding
            ),
            (10, 1024, 20)
        );
    }

    #[test]
    fn config_file_overrides_named_quotas() {
        let q = Quotas::parse("# limits\nnodes = 50\n watches=3 # few\n", "t.conf").unwrap();
        assert_eq!(q.max_nodes, 50);
        assert_eq!(q.max_watches, 3);
        assert_eq!(q.max_transactions, 10);
    }

    #[test]
    fn config_errors_name_file_and_line() {
        let e = Quotas::parse("nodes = 5\nbogus = 1\n", "x.conf")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.conf:2: unknown quota \"bogus\""), "{e}");
        let e = Quotas::parse("nodes = -1\n", "x.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.conf:1") && e.contains("non-negative"), "{e}");
        let e = Quotas::parse("nodes\n", "x.conf").unwrap_err().to_string();
        assert!(e.contains("expected `key = value`"), "{e}");
    }
}
