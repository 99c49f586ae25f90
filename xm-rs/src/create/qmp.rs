//! The replies of qemu's QMP monitor (the device model's control socket), one JSON object per
//! line: a greeting, command replies (`return` or `error`) and asynchronous events. The bytes
//! come from another process over a socket, so nothing here trusts them: any text gives a
//! value or an error, never a panic.

use serde_json::Value;

/// How much of an unreadable line an error message quotes.
const QUOTED_CHARS: usize = 120;

/// What a monitor line could not be taken as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QmpError {
    /// The line is not a JSON object.
    #[error("its monitor said {line:?}: {reason}")]
    NotJson { line: String, reason: String },
    /// The reply is an `error` (its class and description, as qemu sent them).
    #[error("its monitor refused: {0}")]
    Refused(String),
}

/// One line of the monitor.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// An asynchronous event: not the answer to anything, the reader skips it.
    Event,
    /// The greeting or the reply to the last command.
    Reply(Value),
}

/// Reads one line of the monitor.
pub fn parse_line(line: &str) -> Result<Message, QmpError> {
    let value: Value = serde_json::from_str(line).map_err(|e| QmpError::NotJson {
        line: quoted(line.trim()),
        reason: e.to_string(),
    })?;
    let Value::Object(fields) = &value else {
        return Err(QmpError::NotJson {
            line: quoted(line.trim()),
            reason: "not a JSON object".into(),
        });
    };
    if fields.contains_key("event") {
        return Ok(Message::Event);
    }
    if let Some(error) = fields.get("error") {
        return Err(QmpError::Refused(quoted(&error.to_string())));
    }
    Ok(Message::Reply(value))
}

/// The `HOST:PORT` of a `query-vnc` reply, when its VNC server is enabled.
pub fn vnc_address(reply: &Value) -> Option<String> {
    let info = reply.get("return")?;
    if info.get("enabled") != Some(&Value::Bool(true)) {
        return None;
    }
    match (
        info.get("host").and_then(Value::as_str),
        info.get("service").and_then(Value::as_str),
    ) {
        (Some(host), Some(port)) => Some(format!("{host}:{port}")),
        _ => None,
    }
}

/// At most [`QUOTED_CHARS`] characters of `text`, marked when cut.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_skipped_and_replies_returned() {
        assert_eq!(
            parse_line(r#"{"event":"RESUME","timestamp":{"seconds":1,"microseconds":2}}"#),
            Ok(Message::Event)
        );
        let greeting = r#"{"QMP":{"version":{"qemu":{"major":7}},"capabilities":[]}}"#;
        assert!(matches!(parse_line(greeting), Ok(Message::Reply(v)) if v.get("QMP").is_some()));
        assert!(matches!(
            parse_line("{\"return\":{}}\n"),
            Ok(Message::Reply(_))
        ));
    }

    #[test]
    fn an_error_reply_is_a_refusal_naming_qemus_words() {
        let err = parse_line(r#"{"error":{"class":"CommandNotFound","desc":"no query-vnc"}}"#)
            .unwrap_err();
        assert!(matches!(err, QmpError::Refused(_)));
        assert!(err.to_string().contains("no query-vnc"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_quoting_a_bounded_part_of_the_line() {
        assert!(matches!(parse_line("hello"), Err(QmpError::NotJson { .. })));
        assert!(matches!(parse_line("[1,2]"), Err(QmpError::NotJson { .. })));
        assert!(matches!(parse_line(""), Err(QmpError::NotJson { .. })));
        let long = "x".repeat(10_000);
        let text = parse_line(&long).unwrap_err().to_string();
        assert!(text.len() < 400, "{} bytes", text.len());
    }

    #[test]
    fn vnc_address_only_when_enabled_with_host_and_service() {
        let reply = |text: &str| match parse_line(text) {
            Ok(Message::Reply(v)) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            vnc_address(&reply(
                r#"{"return":{"enabled":true,"host":"127.0.0.1","service":"5901","family":"ipv4"}}"#
            ))
            .as_deref(),
            Some("127.0.0.1:5901")
        );
        assert_eq!(vnc_address(&reply(r#"{"return":{"enabled":false}}"#)), None);
        assert_eq!(vnc_address(&reply(r#"{"return":{"enabled":true}}"#)), None);
        assert_eq!(
            vnc_address(&reply(
                r#"{"return":{"enabled":true,"host":1,"service":"1"}}"#
            )),
            None
        );
        assert_eq!(vnc_address(&reply(r#"{"return":[]}"#)), None);
        assert_eq!(vnc_address(&reply(r#"{"QMP":{}}"#)), None);
    }
}
