//! A small typed parser for `key=value,key=value` device strings (vif, vfb, pci options),
//! after cloud-hypervisor's option_parser: whitespace around `=` and `,` is tolerated,
//! unknown keys are refused with the nearest known one, every value is checked.

use std::str::FromStr;

/// What is wrong with a device string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("`{0}` is not of the form key=value")]
    NotKeyValue(String),
    #[error("unknown key `{key}`{}", hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default())]
    UnknownKey { key: String, hint: Option<String> },
    #[error("`{0}` is given more than once")]
    Duplicate(String),
    #[error("invalid {key} {value:?}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Parsed `key=value` pairs (and bare flags), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValues {
    pairs: Vec<(String, String)>,
    flags: Vec<String>,
}

impl KeyValues {
    /// Splits `spec` on `,`; `keys` are the allowed keys, `flags` the allowed bare words.
    pub fn parse(spec: &str, keys: &[&str], flags: &[&str]) -> Result<Self, SpecError> {
        let mut out = KeyValues::default();
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match item.split_once('=') {
                Some((key, value)) => {
                    let key = key.trim();
                    if !keys.contains(&key) {
                        let hint = nearest(key, keys.iter().chain(flags).copied());
                        return Err(SpecError::UnknownKey {
                            key: key.to_string(),
                            hint,
                        });
                    }
                    if out.pairs.iter().any(|(k, _)| k == key) {
                        return Err(SpecError::Duplicate(key.to_string()));
                    }
                    out.pairs.push((key.to_string(), value.trim().to_string()));
                }
                None if flags.contains(&item) => {
                    if out.flags.iter().any(|f| f == item) {
                        return Err(SpecError::Duplicate(item.to_string()));
                    }
                    out.flags.push(item.to_string());
                }
                None => {
                    if keys.contains(&item) {
                        return Err(SpecError::NotKeyValue(item.to_string()));
                    }
                    match nearest(item, keys.iter().chain(flags).copied()) {
                        Some(hint) if flags.contains(&hint.as_str()) => {
                            return Err(SpecError::UnknownKey {
                                key: item.to_string(),
                                hint: Some(hint),
                            });
                        }
                        _ => return Err(SpecError::NotKeyValue(item.to_string())),
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value, or None if absent or empty (empty means "default").
    pub fn non_empty(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_string)
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Parses a value with `FromStr`.
    pub fn convert<T: FromStr>(&self, key: &str) -> Result<Option<T>, SpecError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|e| SpecError::InvalidValue {
                    key: key.to_string(),
                    value: v.to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    /// A 0/1/yes/no/true/false value.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, SpecError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| SpecError::InvalidValue {
                    key: key.to_string(),
                    value: v.to_string(),
                    reason: "expected 0 or 1".into(),
                }),
        }
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The closest candidate within a distance that suggests a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["mac", "bridge", "script"];

    #[test]
    fn whitespace_around_equals_and_commas_is_tolerated() {
        let kv = KeyValues::parse(" bridge = xenbr0 ,  mac=00:16:3e:00:00:01", KEYS, &[])
            .unwrap_or_default();
        assert_eq!(kv.get("bridge"), Some("xenbr0"));
        assert_eq!(kv.get("mac"), Some("00:16:3e:00:00:01"));
    }

    #[test]
    fn empty_spec_has_no_keys() {
        assert_eq!(KeyValues::parse("", KEYS, &[]), Ok(KeyValues::default()));
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        assert_eq!(
            KeyValues::parse("brige=xenbr0", KEYS, &[]),
            Err(SpecError::UnknownKey {
                key: "brige".into(),
                hint: Some("bridge".into())
            })
        );
        assert_eq!(
            KeyValues::parse("colour=red", KEYS, &[]),
            Err(SpecError::UnknownKey {
                key: "colour".into(),
                hint: None
            })
        );
    }

    #[test]
    fn duplicates_and_bare_words_are_refused() {
        assert_eq!(
            KeyValues::parse("mac=a,mac=b", KEYS, &[]),
            Err(SpecError::Duplicate("mac".into()))
        );
        assert_eq!(
            KeyValues::parse("xenbr0", KEYS, &[]),
            Err(SpecError::NotKeyValue("xenbr0".into()))
        );
        assert!(
            KeyValues::parse("trusted", KEYS, &["trusted"]).is_ok_and(|kv| kv.has_flag("trusted"))
        );
    }

    #[test]
    fn typed_conversion_reports_the_key() {
        let kv = KeyValues::parse("mac=12", &["mac"], &[]).unwrap_or_default();
        assert!(matches!(kv.convert::<u8>("mac"), Ok(Some(12))));
        let kv = KeyValues::parse("mac=x", &["mac"], &[]).unwrap_or_default();
        assert!(matches!(
            kv.convert::<u8>("mac"),
            Err(SpecError::InvalidValue { .. })
        ));
    }
}
