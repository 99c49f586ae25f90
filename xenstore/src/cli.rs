//! The `xenstore-*` tools as one multi-call program (`xenstore-rs`): `xenstore-read`,
//! `-write`, `-ls`, `-rm`, `-chmod`, `-exists`, `-list`, `-watch`, with the arguments, output
//! and exit codes of Xen's `xenstore_client.c` (options may follow operands, as with GNU
//! getopt).

use std::io::Write;

use crate::client::{Client, XsOps};
use crate::daemon::core::Perm;
use crate::wire::Errno;

/// Which tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// xenstore-read
    Read,
    /// xenstore-write
    Write,
    /// xenstore-ls
    Ls,
    /// xenstore-rm
    Rm,
    /// xenstore-chmod
    Chmod,
    /// xenstore-exists
    Exists,
    /// xenstore-list
    List,
    /// xenstore-watch
    Watch,
}

impl Mode {
    fn lookup(name: &str) -> Option<Mode> {
        Some(match name {
            "read" => Mode::Read,
            "write" => Mode::Write,
            "ls" => Mode::Ls,
            "rm" => Mode::Rm,
            "chmod" => Mode::Chmod,
            "exists" => Mode::Exists,
            "list" => Mode::List,
            "watch" => Mode::Watch,
            _ => return None,
        })
    }

    fn usage(self) -> &'static str {
        match self {
            Mode::Read => "[-h] [-p] [-R] key [...]",
            Mode::Write => "[-h] [-R] key value [...]",
            Mode::Rm => "[-h] [-t] key [...]",
            Mode::Exists => "[-h] key",
            Mode::List => "[-h] [-p] key [...]",
            Mode::Ls => "[-h] [-f] [-p] [path]",
            Mode::Chmod => "[-h] [-u] [-r] key <mode [modes...]>",
            Mode::Watch => "[-h] [-n NR] key",
        }
    }
}

#[derive(Debug, Default)]
struct Flags {
    flat: bool,
    prefix: bool,
    tidy: bool,
    upto: bool,
    recurse: bool,
    raw: bool,
    number: Option<i64>,
}

/// Escapes a value like `sanitise_value()`: printable ASCII as is, `\t \n \r \\`, other bytes
/// as `\ooo` (below 8) or `\xhh`.
pub fn sanitise(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &c in value {
        match c {
            b' '..=b'~' if c != b'\\' => out.push(c as char),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            c if c < 8 => out.push_str(&format!("\\{c:03o}")),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out
}

/// Reverses [`sanitise`] like `unsanitise_value()`.
pub fn unsanitise(spec: &str) -> Vec<u8> {
    let b = spec.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = b.get(i) else { break };
        i += 1;
        match e {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let digits: Vec<u8> = b[i..]
                    .iter()
                    .take(2)
                    .take_while(|d| d.is_ascii_hexdigit())
                    .copied()
                    .collect();
                i += digits.len();
                let v = u8::from_str_radix(std::str::from_utf8(&digits).unwrap_or("0"), 16)
                    .unwrap_or(b'x');
                out.push(if digits.is_empty() { b'x' } else { v });
            }
            b'0'..=b'7' => {
                i -= 1;
                let digits: Vec<u8> = b[i..]
                    .iter()
                    .take(3)
                    .take_while(|d| (b'0'..=b'7').contains(d))
                    .copied()
                    .collect();
                i += digits.len();
                let v = u32::from_str_radix(std::str::from_utf8(&digits).unwrap_or("0"), 8)
                    .unwrap_or(0);
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    out
}

struct Tool {
    progname: String,
    mode: Mode,
    flags: Flags,
    operands: Vec<String>,
}

fn fail(progname: &str, msg: &str) -> i32 {
    eprintln!("{progname}: {msg}");
    1
}

/// Entry point: `args[0]` decides the tool (`xenstore-read` …) or, for any other name, the
/// first argument does (`xenstore-rs read …`). Returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let argv0 = args.first().cloned().unwrap_or_else(|| "xenstore".into());
    let base = argv0.rsplit('/').next().unwrap_or(&argv0).to_string();
    let (mode_name, rest) = match base.strip_prefix("xenstore-") {
        Some(m) if Mode::lookup(m).is_some() => (m.to_string(), args[1..].to_vec()),
        _ => match args.get(1) {
            Some(m) => (m.clone(), args[2..].to_vec()),
            None => return fail(&argv0, &format!("Usage: {argv0} <mode> [-h] [...]")),
        },
    };
    let Some(mode) = Mode::lookup(&mode_name) else {
        return fail(&argv0, &format!("unknown mode {mode_name}\n"));
    };
    let usage = |code: i32| {
        let shown = if base.starts_with("xenstore-") {
            String::new()
        } else {
            format!("{mode_name} ")
        };
        eprintln!("{argv0}: Usage: {argv0} {shown}{}", mode.usage());
        code
    };
    let mut flags = Flags::default();
    let mut operands = Vec::new();
    let mut it = rest.into_iter();
    let mut only_operands = false;
    while let Some(a) = it.next() {
        if only_operands || !a.starts_with('-') || a == "-" {
            operands.push(a);
            continue;
        }
        if a == "--" {
            only_operands = true;
            continue;
        }
        let (shorts, long) = match a.strip_prefix("--") {
            Some(l) => (Vec::new(), Some(l.to_string())),
            None => (a[1..].chars().collect(), None),
        };
        let mut opts: Vec<(char, Option<String>)> = Vec::new();
        if let Some(l) = long {
            let (name, val) = match l.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (l, None),
            };
            let c = match name.as_str() {
                "help" => 'h',
                "flat" => 'f',
                "prefix" => 'p',
                "tidy" => 't',
                "upto" => 'u',
                "recurse" => 'r',
                "number" => 'n',
                "raw" => 'R',
                "depth" => 'd',
                _ => return usage(1),
            };
            opts.push((c, val));
        } else {
            let mut k = 0;
            while k < shorts.len() {
                let c = shorts[k];
                if c == 'n' || c == 'd' {
                    let attached: String = shorts[k + 1..].iter().collect();
                    opts.push((c, (!attached.is_empty()).then_some(attached)));
                    break;
                }
                opts.push((c, None));
                k += 1;
            }
        }
        for (c, val) in opts {
            let needs_value = c == 'n' || c == 'd';
            let val = if needs_value {
                match val.or_else(|| it.next()) {
                    Some(v) => Some(v),
                    None => return usage(1),
                }
            } else {
                val
            };
            let ok = match c {
                'h' => return usage(0),
                'f' => {
                    mode == Mode::Ls && {
                        flags.flat = true;
                        true
                    }
                }
                'p' => {
                    matches!(mode, Mode::Read | Mode::List | Mode::Ls) && {
                        flags.prefix = true;
                        true
                    }
                }
                't' => {
                    mode == Mode::Rm && {
                        flags.tidy = true;
                        true
                    }
                }
                'u' => {
                    mode == Mode::Chmod && {
                        flags.upto = true;
                        true
                    }
                }
                'r' => {
                    mode == Mode::Chmod && {
                        flags.recurse = true;
                        true
                    }
                }
                'R' => {
                    matches!(mode, Mode::Read | Mode::Write) && {
                        flags.raw = true;
                        true
                    }
                }
                'n' => {
                    mode == Mode::Watch && {
                        flags.number = Some(crate::daemon::core::atoi(
                            val.unwrap_or_default().as_bytes(),
                        ));
                        true
                    }
                }
                'd' => mode == Mode::Watch,
                's' => true,
                _ => false,
            };
            if !ok {
                return usage(1);
            }
        }
    }
    if mode == Mode::Write && operands.len() % 2 == 1 {
        return usage(1);
    }
    if mode != Mode::Ls && operands.is_empty() {
        return usage(1);
    }
    let tool = Tool {
        progname: argv0.clone(),
        mode,
        flags,
        operands,
    };
    let client = match Client::open() {
        Ok(c) => c,
        Err(e) => return fail(&argv0, &format!("xs_open: {e}")),
    };
    tool.run(&client)
}

impl Tool {
    fn uses_transaction(&self) -> bool {
        match self.mode {
            Mode::Read => self.operands.len() > 1,
            Mode::Write => self.operands.len() > 2,
            Mode::Ls | Mode::Watch => false,
            _ => true,
        }
    }

    fn run(&self, client: &Client) -> i32 {
        match self.mode {
            Mode::Watch => return self.watch(client),
            Mode::Ls => {
                let mut out = std::io::stdout().lock();
                let paths = if self.operands.is_empty() {
                    vec!["/".to_string()]
                } else {
                    self.operands.clone()
                };
                for p in paths {
                    if let Err(code) = self.ls(client, &p, 0, &mut out) {
                        return code;
                    }
                }
                return 0;
            }
            _ => {}
        }
        loop {
            let mut output = Vec::new();
            let code = if self.uses_transaction() {
                let t = match client.transaction() {
                    Ok(t) => t,
                    Err(_) => return fail(&self.progname, "couldn't start transaction"),
                };
                let code = self.perform(&t, &mut output);
                let end = if code == 0 { t.commit() } else { t.abort() };
                match end {
                    Ok(()) => code,
                    Err(e) if code == 0 && e.errno() == Some(Errno::Eagain) => continue,
                    Err(_) => return fail(&self.progname, "couldn't end transaction"),
                }
            } else {
                self.perform(client, &mut output)
            };
            let _ = std::io::stdout().write_all(&output);
            return code;
        }
    }

    fn perform(&self, xs: &dyn XsOps, out: &mut Vec<u8>) -> i32 {
        let ops = &self.operands;
        match self.mode {
            Mode::Read => {
                for key in ops {
                    let Ok(val) = xs.read(key) else {
                        eprintln!("{}: couldn't read path {key}", self.progname);
                        return 1;
                    };
                    if self.flags.prefix {
                        out.extend_from_slice(format!("{key}: ").as_bytes());
                    }
                    if self.flags.raw {
                        out.extend_from_slice(&val);
                    } else {
                        out.extend_from_slice(format!("{}\n", sanitise(&val)).as_bytes());
                    }
                }
                0
            }
            Mode::Write => {
                for pair in ops.chunks(2) {
                    let value = if self.flags.raw {
                        pair[1].as_bytes().to_vec()
                    } else {
                        unsanitise(&pair[1])
                    };
                    if xs.write(&pair[0], &value).is_err() {
                        eprintln!("{}: could not write path {}", self.progname, pair[0]);
                        return 1;
                    }
                }
                0
            }
            Mode::Rm => {
                for key in ops {
                    let mut path = key.clone();
                    loop {
                        if xs.rm(&path).is_err() {
                            eprintln!("{}: could not remove path {path}", self.progname);
                            return 1;
                        }
                        if !self.flags.tidy {
                            break;
                        }
                        let Some(slash) = path.rfind('/') else { break };
                        path.truncate(slash);
                        let empty_value = xs.read(&path).is_ok_and(|v| v.is_empty());
                        let no_children = xs.directory(&path).is_ok_and(|c| c.is_empty());
                        if !(empty_value && no_children) {
                            break;
                        }
                    }
                }
                0
            }
            Mode::Exists => {
                for key in ops {
                    if xs.read(key).is_err() {
                        return 1;
                    }
                }
                0
            }
            Mode::List => {
                for key in ops {
                    let Ok(list) = xs.directory(key) else {
                        eprintln!("{}: could not list path {key}", self.progname);
                        return 1;
                    };
                    let pref = if key == "/" { "" } else { key.as_str() };
                    for name in list {
                        if self.flags.prefix {
                            out.extend_from_slice(format!("{pref}/").as_bytes());
                        }
                        out.extend_from_slice(format!("{name}\n").as_bytes());
                    }
                }
                0
            }
            Mode::Chmod => {
                let path = &ops[0];
                let mut perms = Vec::new();
                for spec in &ops[1..] {
                    let domid =
                        crate::daemon::core::atoi(spec.get(1..).unwrap_or("").as_bytes()) as u32;
                    let (read, write) = match spec.as_bytes().first() {
                        Some(b'n') => (false, false),
                        Some(b'r') => (true, false),
                        Some(b'w') => (false, true),
                        Some(b'b') => (true, true),
                        other => {
                            let c = other.map_or(String::new(), |&c| (c as char).to_string());
                            return fail(
                                &self.progname,
                                &format!("Invalid permission specification: '{c}'"),
                            );
                        }
                    };
                    perms.push(Perm {
                        domid,
                        read,
                        write,
                        ignore: false,
                    });
                }
                self.chmod(xs, path, &perms, self.flags.upto, self.flags.recurse)
            }
            Mode::Ls | Mode::Watch => 0,
        }
    }

    fn chmod(&self, xs: &dyn XsOps, path: &str, perms: &[Perm], upto: bool, recurse: bool) -> i32 {
        if path.is_empty() {
            return 0;
        }
        if let Err(e) = xs.set_perms(path, perms) {
            let errno = e
                .errno()
                .map_or_else(|| e.to_string(), |n| std::io::Error::from(n).to_string());
            return fail(
                &self.progname,
                &format!("Error occurred setting permissions on '{path}': {errno}"),
            );
        }
        if upto {
            let Some(slash) = path.rfind('/') else {
                return fail(
                    &self.progname,
                    &format!("Unable to locate path separator '/' in '{path}'"),
                );
            };
            let code = self.chmod(xs, &path[..slash], perms, true, false);
            if code != 0 {
                return code;
            }
        }
        if recurse {
            if let Ok(children) = xs.directory(path) {
                for c in children {
                    let code = self.chmod(xs, &format!("{path}/{c}"), perms, false, true);
                    if code != 0 {
                        return code;
                    }
                }
            }
        }
        0
    }

    fn ls(&self, xs: &Client, path: &str, depth: usize, out: &mut impl Write) -> Result<(), i32> {
        // Not a terminal: the C tool's width is 80 (or unlimited with -f).
        let max_width: usize = if self.flags.flat { usize::MAX / 4 } else { 80 };
        let desired_width: usize = if self.flags.flat { 0 } else { 60 };
        const TAG_LEN: usize = 8; // ` = "..."`
        let children = match xs.directory(path) {
            Ok(c) => c,
            Err(e) if depth > 0 && e.errno() == Some(Errno::Enoent) => return Ok(()),
            Err(e) => {
                let why = e
                    .errno()
                    .map_or_else(|| e.to_string(), |n| std::io::Error::from(n).to_string());
                return Err(fail(
                    &self.progname,
                    &format!("xs_directory ({path}): {why}"),
                ));
            }
        };
        for name in children {
            let full = format!("{path}{}{name}", if path.ends_with('/') { "" } else { "/" });
            let mut line = String::new();
            if self.flags.flat {
                line.push_str(&full);
            } else {
                line.push_str(&" ".repeat(depth));
                let room = max_width.saturating_sub(TAG_LEN + depth);
                line.push_str(&name.chars().take(room).collect::<String>());
            }
            let mut width = line.len();
            match xs.read(&full) {
                Err(_) => line.push(':'),
                Ok(val) => {
                    let shown = sanitise(&val);
                    if max_width < width + val.len() + TAG_LEN {
                        let room = max_width.saturating_sub(TAG_LEN + width);
                        line.push_str(&format!(
                            " = \"{}\\...\"",
                            shown.chars().take(room).collect::<String>()
                        ));
                    } else {
                        let part = format!(" = \"{shown}\"");
                        width += part.len();
                        line.push_str(&part);
                        if self.flags.prefix {
                            line.push(' ');
                            width += 1;
                            while width < desired_width.min(max_width) {
                                line.push(if width & 1 == 1 { '.' } else { ' ' });
                                width += 1;
                            }
                        }
                    }
                }
            }
            if self.flags.prefix {
                match xs.get_perms(&full) {
                    Ok(perms) => {
                        let list: Vec<String> = perms.iter().map(Perm::to_wire).collect();
                        line.push_str(&format!("  ({})", list.join(",")));
                    }
                    Err(e) => eprintln!(
                        "{}: \ncould not access permissions for {name}: {e}",
                        self.progname
                    ),
                }
            }
            line.push('\n');
            if out.write_all(line.as_bytes()).is_err() {
                return Err(1);
            }
            self.ls(xs, &full, depth + 1, out)?;
        }
        Ok(())
    }

    fn watch(&self, client: &Client) -> i32 {
        for w in &self.operands {
            if client.watch(w, w).is_err() {
                return fail(&self.progname, &format!("Unable to add watch on {w}\n"));
            }
        }
        let mut count: i64 = 0;
        let max = self.flags.number.unwrap_or(-1);
        while max == -1 || count < max {
            match client.next_event(None) {
                Ok(Some(ev)) => {
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{}", ev.path)
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return 1;
                    }
                }
                Ok(None) => {}
                Err(_) => return 1,
            }
            count += 1;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitise_escapes_like_xenstore_client() {
        assert_eq!(sanitise(b"plain text"), "plain text");
        assert_eq!(sanitise(b"a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(
            sanitise(&[0, 7, 8, 0x7f, 0xff]),
            "\\000\\007\\x08\\x7f\\xff"
        );
    }

    #[test]
    fn unsanitise_reverses_sanitise() {
        for v in [&b"x\x00y\x01\tz\\"[..], b"\x7f\xff abc", b""] {
            assert_eq!(unsanitise(&sanitise(v)), v);
        }
        assert_eq!(unsanitise("\\x4"), vec![4]);
    }
}
