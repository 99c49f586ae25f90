//! Tokenizer for the Python-2 subset of xm config files (which also covers xl's syntax):
//! indentation, implicit line joining inside brackets, backslash continuation, comments,
//! single/double/triple-quoted and raw strings, Python 2 integer and float literals.

use super::error::{LangError, LangErrorKind};
use super::source::Span;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Op(&'static str),
    Newline,
    Indent,
    Dedent,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("`{n}`"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Op(op) => format!("`{op}`"),
            Tok::Newline => "end of line".to_string(),
            Tok::Indent => "an indented block".to_string(),
            Tok::Dedent => "end of the indented block".to_string(),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Longest first, so `//=` wins over `//` and `/`.
const OPERATORS: &[&str] = &[
    "//=", "**=", ">>=", "<<=", "**", "//", "==", "!=", "<>", "<=", ">=", "+=", "-=", "*=", "/=",
    "%=", "&=", "|=", "^=", "<<", ">>", "+", "-", "*", "/", "%", "<", ">", "=", "(", ")", "[", "]",
    "{", "}", ",", ":", ".", ";", "@", "&", "|", "^", "~", "`",
];

/// Splits `text` into tokens, ending with `Newline`, `Dedent`s and `Eof`.
pub fn tokenize(text: &str) -> Result<Vec<Token>, LangError> {
    Lexer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        tokens: Vec::new(),
        brackets: Vec::new(),
    }
    .run()
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    tokens: Vec<Token>,
    brackets: Vec<(u8, Span)>,
}

fn err<T>(start: usize, end: usize, kind: LangErrorKind) -> Result<T, LangError> {
    Err(LangError::new(Span::new(start, end), kind))
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.tokens.push(Token {
            tok,
            span: Span::new(start, self.pos),
        });
    }

    fn run(mut self) -> Result<Vec<Token>, LangError> {
        let mut indents: Vec<usize> = vec![0];
        // Whether indentation so far used tabs, spaces: mixing them is refused.
        let mut indent_chars: Option<u8> = None;
        let mut at_line_start = true;
        loop {
            if at_line_start && self.brackets.is_empty() {
                let line_start = self.pos;
                let mut width = 0usize;
                let mut kinds = 0u8;
                while let Some(c) = self.peek() {
                    match c {
                        b' ' => {
                            width += 1;
                            kinds |= 1;
                        }
                        b'\t' => {
                            width = (width / 8 + 1) * 8;
                            kinds |= 2;
                        }
                        b'\x0c' => width = 0,
                        _ => break,
                    }
                    self.pos += 1;
                }
                match self.peek() {
                    None => break,
                    Some(b'#') | Some(b'\n') | Some(b'\r') => {
                        // Blank or comment-only line: no tokens, no indentation change.
                        self.skip_to_line_end();
                        self.consume_newline();
                        continue;
                    }
                    _ => {}
                }
                if width > 0 {
                    let this = if kinds == 3 { 3 } else { kinds };
                    match indent_chars {
                        None => indent_chars = Some(this),
                        Some(previous) if previous != this || this == 3 => {
                            return err(line_start, self.pos, LangErrorKind::AmbiguousTabs);
                        }
                        _ => {}
                    }
                }
                let current = indents.last().copied().unwrap_or(0);
                if width > current {
                    indents.push(width);
                    self.push(Tok::Indent, line_start);
                } else {
                    while width < indents.last().copied().unwrap_or(0) {
                        indents.pop();
                        self.push(Tok::Dedent, self.pos);
                    }
                    if width != indents.last().copied().unwrap_or(0) {
                        return err(line_start, self.pos, LangErrorKind::BadDedent);
                    }
                }
                at_line_start = false;
            }
            let Some(c) = self.peek() else { break };
            let start = self.pos;
            match c {
                b' ' | b'\t' | b'\x0c' => self.pos += 1,
                b'#' => self.skip_to_line_end(),
                b'\\' => {
                    self.pos += 1;
                    if !self.consume_newline() {
                        return err(start, start + 1, LangErrorKind::BadContinuation);
                    }
                }
                b'\n' | b'\r' => {
                    self.consume_newline();
                    if self.brackets.is_empty() {
                        self.tokens.push(Token {
                            tok: Tok::Newline,
                            span: Span::new(start, start + 1),
                        });
                        at_line_start = true;
                    }
                }
                b'"' | b'\'' => {
                    let value = self.string(start, false, false)?;
                    self.push(Tok::Str(value), start);
                }
                b'0'..=b'9' => self.number(start)?,
                b'.' if matches!(self.peek_at(1), Some(b'0'..=b'9')) => self.number(start)?,
                c if c == b'_' || c.is_ascii_alphabetic() => {
                    while matches!(self.peek(), Some(c) if c == b'_' || c.is_ascii_alphanumeric()) {
                        self.pos += 1;
                    }
                    let word = &self.text[start..self.pos];
                    let lower = word.to_ascii_lowercase();
                    let is_prefix = matches!(lower.as_str(), "r" | "u" | "b" | "ur" | "br");
                    if is_prefix && matches!(self.peek(), Some(b'"') | Some(b'\'')) {
                        let raw = lower.contains('r');
                        let unicode = lower.contains('u');
                        let value = self.string(start, raw, unicode)?;
                        self.push(Tok::Str(value), start);
                    } else {
                        self.push(Tok::Name(word.to_string()), start);
                    }
                }
                _ if c >= 0x80 => {
                    let ch = self.text[start..].chars().next().unwrap_or('\u{fffd}');
                    return err(
                        start,
                        start + ch.len_utf8(),
                        LangErrorKind::UnexpectedChar(ch),
                    );
                }
                _ => self.operator(start)?,
            }
        }
        if let Some(&(open, span)) = self.brackets.last() {
            return Err(LangError::new(
                span,
                LangErrorKind::UnclosedBracket(open as char),
            ));
        }
        let end = self.pos;
        if !matches!(
            self.tokens.last(),
            None | Some(Token {
                tok: Tok::Newline,
                ..
            })
        ) {
            self.tokens.push(Token {
                tok: Tok::Newline,
                span: Span::new(end, end),
            });
        }
        for _ in 1..indents.len() {
            self.tokens.push(Token {
                tok: Tok::Dedent,
                span: Span::new(end, end),
            });
        }
        self.tokens.push(Token {
            tok: Tok::Eof,
            span: Span::new(end, end),
        });
        Ok(self.tokens)
    }

    fn skip_to_line_end(&mut self) {
        while !matches!(self.peek(), None | Some(b'\n') | Some(b'\r')) {
            self.pos += 1;
        }
    }

    /// Consumes `\n`, `\r\n` or `\r`; false if not at a line end.
    fn consume_newline(&mut self) -> bool {
        match self.peek() {
            Some(b'\n') => self.pos += 1,
            Some(b'\r') => {
                self.pos += 1;
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
            }
            _ => return false,
        }
        true
    }

    fn operator(&mut self, start: usize) -> Result<(), LangError> {
        let rest = &self.bytes[start..];
        let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(op.as_bytes())) else {
            let ch = self.text[start..].chars().next().unwrap_or('\u{fffd}');
            return err(
                start,
                start + ch.len_utf8(),
                LangErrorKind::UnexpectedChar(ch),
            );
        };
        self.pos += op.len();
        let first = op.as_bytes()[0];
        match first {
            b'(' | b'[' | b'{' => self.brackets.push((first, Span::new(start, self.pos))),
            b')' | b']' | b'}' if op.len() == 1 => {
                let expected = match first {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                match self.brackets.pop() {
                    None => {
                        return err(
                            start,
                            self.pos,
                            LangErrorKind::UnmatchedClose(first as char),
                        )
                    }
                    Some((open, _)) if open != expected => {
                        let closer = match open {
                            b'(' => ')',
                            b'[' => ']',
                            _ => '}',
                        };
                        return err(
                            start,
                            self.pos,
                            LangErrorKind::MismatchedBracket {
                                expected: closer,
                                found: first as char,
                            },
                        );
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
        self.push(Tok::Op(op), start);
        Ok(())
    }

    fn number(&mut self, start: usize) -> Result<(), LangError> {
        let rest = &self.text[start..];
        let is_ident = |c: u8| c == b'_' || c.is_ascii_alphanumeric();
        let lower_rest = rest.get(..2).map(|p| p.to_ascii_lowercase());
        let radix_prefix = match lower_rest.as_deref() {
            Some("0x") => Some(16),
            Some("0o") => Some(8),
            Some("0b") => Some(2),
            _ => None,
        };
        if let Some(radix) = radix_prefix {
            self.pos += 2;
            let digits_start = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric()) {
                self.pos += 1;
            }
            let mut digits = &self.text[digits_start..self.pos];
            if digits.ends_with(['l', 'L']) {
                digits = &digits[..digits.len() - 1];
            }
            let literal = self.text[start..self.pos].to_string();
            let value = parse_int(digits, radix, &literal, start, self.pos)?;
            self.push(Tok::Int(value), start);
            return Ok(());
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e') | Some(b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+') | Some(b'-')) {
                self.pos += 1;
            }
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                is_float = true;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let literal_end = self.pos;
        let mut long_suffix = false;
        if !is_float && matches!(self.peek(), Some(b'l') | Some(b'L')) {
            self.pos += 1;
            long_suffix = true;
        }
        if matches!(self.peek(), Some(c) if is_ident(c)) {
            while matches!(self.peek(), Some(c) if is_ident(c)) {
                self.pos += 1;
            }
            let literal = self.text[start..self.pos].to_string();
            let kind = if literal.ends_with(['j', 'J']) {
                LangErrorKind::Unsupported(format!("complex number {literal:?}"))
            } else {
                LangErrorKind::BadNumber(literal)
            };
            return err(start, self.pos, kind);
        }
        let digits = &self.text[start..literal_end];
        if is_float {
            let value: f64 = digits.parse().map_err(|_| {
                LangError::new(
                    Span::new(start, self.pos),
                    LangErrorKind::BadNumber(digits.to_string()),
                )
            })?;
            self.push(Tok::Float(value), start);
        } else {
            let literal = self.text[start..self.pos].to_string();
            // Python 2: a leading zero means octal.
            let value = if digits.len() > 1 && digits.starts_with('0') {
                parse_int(&digits[1..], 8, &literal, start, self.pos)?
            } else {
                parse_int(digits, 10, &literal, start, self.pos)?
            };
            let _ = long_suffix;
            self.push(Tok::Int(value), start);
        }
        Ok(())
    }

    /// Reads a string literal whose opening quote is at `self.pos`; returns its value.
    fn string(&mut self, start: usize, raw: bool, unicode: bool) -> Result<String, LangError> {
        let quote = self.bytes[self.pos];
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                let kind = if triple {
                    LangErrorKind::UnterminatedTripleString
                } else {
                    LangErrorKind::UnterminatedString
                };
                return err(start, self.pos, kind);
            };
            if c == quote {
                if !triple {
                    self.pos += 1;
                    return Ok(value);
                }
                if self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote) {
                    self.pos += 3;
                    return Ok(value);
                }
            }
            if !triple && (c == b'\n' || c == b'\r') {
                return err(start, self.pos, LangErrorKind::UnterminatedString);
            }
            if c == b'\\' {
                let escape_start = self.pos;
                self.pos += 1;
                let Some(next) = self.text[self.pos..].chars().next() else {
                    continue;
                };
                if raw {
                    // Raw strings keep the backslash; it still stops a quote from closing.
                    value.push('\\');
                    value.push(next);
                    self.pos += next.len_utf8();
                    continue;
                }
                self.pos += next.len_utf8();
                match next {
                    '\n' => {}
                    '\r' => {
                        if self.peek() == Some(b'\n') {
                            self.pos += 1;
                        }
                    }
                    '\\' => value.push('\\'),
                    '\'' => value.push('\''),
                    '"' => value.push('"'),
                    'a' => value.push('\x07'),
                    'b' => value.push('\x08'),
                    'f' => value.push('\x0c'),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'v' => value.push('\x0b'),
                    '0'..='7' => {
                        let mut code = next as u32 - '0' as u32;
                        for _ in 0..2 {
                            match self.peek() {
                                Some(d @ b'0'..=b'7') => {
                                    code = code * 8 + u32::from(d - b'0');
                                    self.pos += 1;
                                }
                                _ => break,
                            }
                        }
                        self.push_code(&mut value, code, unicode, escape_start)?;
                    }
                    'x' => {
                        let code = self.hex_digits(2, escape_start)?;
                        self.push_code(&mut value, code, unicode, escape_start)?;
                    }
                    'u' | 'U' if unicode => {
                        let count = if next == 'u' { 4 } else { 8 };
                        let code = self.hex_digits(count, escape_start)?;
                        self.push_code(&mut value, code, true, escape_start)?;
                    }
                    'N' if unicode => {
                        return err(
                            escape_start,
                            self.pos,
                            LangErrorKind::Unsupported("\\N{...} named escape".to_string()),
                        );
                    }
                    other => {
                        // Python keeps unknown escapes as written.
                        value.push('\\');
                        value.push(other);
                    }
                }
                continue;
            }
            let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
            value.push(ch);
            self.pos += ch.len_utf8();
        }
    }

    fn hex_digits(&mut self, count: usize, escape_start: usize) -> Result<u32, LangError> {
        let digits = self.text.get(self.pos..self.pos + count).unwrap_or("");
        if digits.len() != count || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            let shown = self.text[escape_start..(self.pos + count).min(self.text.len())]
                .chars()
                .take(count + 2)
                .collect();
            return err(escape_start, self.pos, LangErrorKind::BadEscape(shown));
        }
        self.pos += count;
        u32::from_str_radix(digits, 16).map_err(|_| {
            LangError::new(
                Span::new(escape_start, self.pos),
                LangErrorKind::BadEscape(digits.into()),
            )
        })
    }

    fn push_code(
        &self,
        value: &mut String,
        code: u32,
        unicode: bool,
        escape_start: usize,
    ) -> Result<(), LangError> {
        let shown = self.text[escape_start..self.pos].to_string();
        if !unicode && code >= 0x80 {
            // Python 2 byte strings hold raw bytes; we hold UTF-8 text, so say so rather
            // than silently produce a different string.
            return err(
                escape_start,
                self.pos,
                LangErrorKind::BadEscape(format!(
                    "{shown} (a non-ASCII byte; write the character itself, configs are UTF-8)"
                )),
            );
        }
        match char::from_u32(code) {
            Some(c) => {
                value.push(c);
                Ok(())
            }
            None => err(escape_start, self.pos, LangErrorKind::BadEscape(shown)),
        }
    }
}

fn parse_int(
    digits: &str,
    radix: u32,
    literal: &str,
    start: usize,
    end: usize,
) -> Result<i64, LangError> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return err(start, end, LangErrorKind::BadNumber(literal.to_string()));
    }
    i64::from_str_radix(digits, radix).map_err(|_| {
        LangError::new(
            Span::new(start, end),
            LangErrorKind::IntegerTooLarge(literal.to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        match tokenize(text) {
            Ok(tokens) => tokens.into_iter().map(|t| t.tok).collect(),
            Err(e) => panic!("tokenize failed: {e:?}"),
        }
    }

    fn lex_error(text: &str) -> LangErrorKind {
        match tokenize(text) {
            Ok(tokens) => panic!("expected an error, got {tokens:?}"),
            Err(e) => e.kind,
        }
    }

    fn name(s: &str) -> Tok {
        Tok::Name(s.to_string())
    }

    fn string(s: &str) -> Tok {
        Tok::Str(s.to_string())
    }

    #[test]
    fn simple_assignment_ends_with_newline_and_eof() {
        assert_eq!(
            toks("memory = 512"),
            vec![
                name("memory"),
                Tok::Op("="),
                Tok::Int(512),
                Tok::Newline,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines_produce_no_tokens() {
        assert_eq!(
            toks("# c\n\n   # indented comment\nx=1 # trailing\n"),
            vec![name("x"), Tok::Op("="), Tok::Int(1), Tok::Newline, Tok::Eof]
        );
    }

    #[test]
    fn newlines_inside_brackets_are_joined() {
        assert_eq!(
            toks("d = [ 'a',\n      'b' ]\n"),
            vec![
                name("d"),
                Tok::Op("="),
                Tok::Op("["),
                string("a"),
                Tok::Op(","),
                string("b"),
                Tok::Op("]"),
                Tok::Newline,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn backslash_continues_a_line() {
        assert_eq!(
            toks("x = 1 + \\\n  2\n"),
            vec![
                name("x"),
                Tok::Op("="),
                Tok::Int(1),
                Tok::Op("+"),
                Tok::Int(2),
                Tok::Newline,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn indentation_produces_indent_and_dedent() {
        let t = toks("if x:\n    y = 1\nz = 2\n");
        assert_eq!(t[3], Tok::Newline);
        assert_eq!(t[4], Tok::Indent);
        assert!(t.contains(&Tok::Dedent));
    }

    #[test]
    fn string_escapes_follow_python() {
        assert_eq!(
            toks(r#"'a\tb\n\\\'\x41\101\q'"#)[0],
            string("a\tb\n\\'AA\\q")
        );
        assert_eq!(toks(r"r'\d+\''")[0], string(r"\d+\'"));
        assert_eq!(toks(r"u'\u00e7'")[0], string("ç"));
    }

    #[test]
    fn triple_quoted_strings_span_lines_and_hold_quotes() {
        assert_eq!(toks("x = \"\"\"a'\"\nb\"\"\"")[2], string("a'\"\nb"));
        assert_eq!(toks("x = '''it's'''")[2], string("it's"));
    }

    #[test]
    fn utf8_text_in_strings_and_comments_is_kept() {
        assert_eq!(toks("# máquina\nx = 'ção'")[2], string("ção"));
    }

    #[test]
    fn python2_number_forms() {
        assert_eq!(toks("0x1F")[0], Tok::Int(31));
        assert_eq!(toks("010")[0], Tok::Int(8));
        assert_eq!(toks("0o10")[0], Tok::Int(8));
        assert_eq!(toks("10L")[0], Tok::Int(10));
        assert_eq!(toks("1.5e3")[0], Tok::Float(1500.0));
        assert_eq!(toks(".5")[0], Tok::Float(0.5));
    }

    #[test]
    fn lexing_errors_are_reported() {
        assert_eq!(lex_error("x = 'abc\n"), LangErrorKind::UnterminatedString);
        assert_eq!(
            lex_error("x = '''abc"),
            LangErrorKind::UnterminatedTripleString
        );
        assert_eq!(
            lex_error("x = [1, 2\n"),
            LangErrorKind::UnclosedBracket('[')
        );
        assert_eq!(
            lex_error("x = (1]"),
            LangErrorKind::MismatchedBracket {
                expected: ')',
                found: ']'
            }
        );
        assert_eq!(lex_error("x = 1)"), LangErrorKind::UnmatchedClose(')'));
        assert_eq!(
            lex_error("x = 09"),
            LangErrorKind::BadNumber("09".to_string())
        );
        assert_eq!(
            lex_error("x = 12abc"),
            LangErrorKind::BadNumber("12abc".to_string())
        );
        assert_eq!(
            lex_error("x = 99999999999999999999"),
            LangErrorKind::IntegerTooLarge("99999999999999999999".into())
        );
        assert_eq!(lex_error("x = $"), LangErrorKind::UnexpectedChar('$'));
        assert_eq!(lex_error("x = ç"), LangErrorKind::UnexpectedChar('ç'));
        assert_eq!(lex_error("x = 1 \\ 2"), LangErrorKind::BadContinuation);
        assert!(matches!(
            lex_error("x = '\\xff'"),
            LangErrorKind::BadEscape(_)
        ));
        assert!(matches!(
            lex_error("x = '\\x4'"),
            LangErrorKind::BadEscape(_)
        ));
        assert_eq!(
            lex_error("if x:\n    a = 1\n  b = 2\n"),
            LangErrorKind::BadDedent
        );
        assert_eq!(
            lex_error("if x:\n    a = 1\n\tb = 2\n"),
            LangErrorKind::AmbiguousTabs
        );
        assert!(matches!(lex_error("x = 1j"), LangErrorKind::Unsupported(_)));
    }
}
