//! One test per construct of the config subset and per error class.

use super::*;
use crate::config::host::SandboxHost;

fn sandbox() -> SandboxHost {
    SandboxHost {
        existing_paths: vec!["/boot/vmlinuz-6.1.0-sandbox".into()],
        environment: vec![("HOME".into(), "/root".into())],
        shell_answers: vec![("uname -r".into(), "6.1.0-sandbox".into())],
    }
}

fn run_with(
    text: &str,
    variables: &[(&str, &str)],
    allow_shell: bool,
) -> Result<Evaluation, LangError> {
    let host = sandbox();
    let options = EvalOptions {
        limits: Limits {
            max_steps: 100_000,
            max_bytes: 1 << 20,
            ..Limits::default()
        },
        allow_shell,
        host: &host,
        variables: variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        config_path: "test.cfg".into(),
    };
    evaluate(text, &options)
}

fn ok(text: &str) -> Evaluation {
    match run_with(text, &[], true) {
        Ok(e) => e,
        Err(e) => panic!("config {text:?} failed: {e:?}"),
    }
}

fn value_of(text: &str, name: &str) -> ConfigValue {
    let evaluation = ok(text);
    match evaluation.get(name) {
        Some(v) => v.value.clone(),
        None => panic!("{name} not set by {text:?}"),
    }
}

fn s(text: &str) -> ConfigValue {
    ConfigValue::Str(text.to_string())
}

fn i(n: i64) -> ConfigValue {
    ConfigValue::Int(n)
}

fn error_of(text: &str) -> LangErrorKind {
    match run_with(text, &[], true) {
        Ok(e) => panic!("expected {text:?} to fail, got {:?}", e.variables),
        Err(e) => e.kind,
    }
}

#[test]
fn assignments_and_augmented_assignments() {
    assert_eq!(value_of("x = 1\nx += 2\nx *= 3\nx -= 1", "x"), i(8));
    assert_eq!(value_of("e = 'a'\ne += 'b'", "e"), s("ab"));
    assert_eq!(
        value_of("l = ['a']\nm = l\nl += ['b']", "m"),
        ConfigValue::List(vec![s("a"), s("b")])
    );
    assert_eq!(value_of("a = b = 5", "a"), i(5));
    assert_eq!(value_of("a, b = 1, 2", "b"), i(2));
    assert_eq!(
        value_of("d = {}\nd['k'] = 1", "d"),
        ConfigValue::Dict(vec![(s("k"), i(1))])
    );
}

#[test]
fn imports_of_the_allowed_modules() {
    let e = ok("import commands, os, os.path, sys, re, string\nfrom os.path import exists\nfrom commands import getoutput as go\nk = go('uname -r')");
    assert_eq!(
        e.get("k").map(|v| v.value.clone()),
        Some(s("6.1.0-sandbox"))
    );
    assert!(matches!(error_of("import socket"), LangErrorKind::UnknownModule(m) if m == "socket"));
    assert!(matches!(
        error_of("from subprocess import call"),
        LangErrorKind::UnknownModule(_)
    ));
    assert!(matches!(
        error_of("from os import *"),
        LangErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        error_of("import os\nos.system('ls')"),
        LangErrorKind::UnknownModuleAttr { .. }
    ));
}

#[test]
fn seed_config_style_kernel_from_shell_output() {
    let text =
        "import commands\nkrn = commands.getoutput('uname -r')\nkernel = '/boot/vmlinuz-' + krn";
    let e = ok(text);
    assert_eq!(
        e.get("kernel").map(|v| v.value.clone()),
        Some(s("/boot/vmlinuz-6.1.0-sandbox"))
    );
    assert!(e.get("krn").is_some_and(|v| v.read_by_config));
    assert_eq!(e.shell_commands.len(), 1);
    assert!(e.uses_python);
}

#[test]
fn shell_can_be_refused() {
    let err = run_with(
        "import commands\nx = commands.getoutput('uname -r')",
        &[],
        false,
    );
    assert!(matches!(
        err,
        Err(LangError {
            kind: LangErrorKind::ShellRefused(_),
            ..
        })
    ));
}

#[test]
fn if_elif_else_and_comparisons() {
    let text = "import os, re\narch = os.uname()[4]\nif re.search('64', arch):\n    lib = 'lib64'\nelif arch == 'i686':\n    lib = 'lib'\nelse:\n    lib = 'other'";
    assert_eq!(value_of(text, "lib"), s("lib64"));
    assert_eq!(
        value_of("x = 1 < 2 <= 2 != 3", "x"),
        ConfigValue::Bool(true)
    );
    assert_eq!(
        value_of("x = 'a' in 'cat' and 3 not in [1, 2]", "x"),
        ConfigValue::Bool(true)
    );
    assert_eq!(value_of("x = None is None", "x"), ConfigValue::Bool(true));
    assert_eq!(value_of("x = 0 or 'fallback'", "x"), s("fallback"));
    assert_eq!(value_of("x = not []", "x"), ConfigValue::Bool(true));
    assert_eq!(value_of("x = 'y' if 0 else 'n'", "x"), s("n"));
}

#[test]
fn def_with_return_defaults_and_keywords() {
    let text = "def disk(n, mode='w'):\n    return 'phy:/dev/vg/%s,xvd%s,%s' % (n, chr(97 + len(n) - 4), mode)\nd = [disk('root'), disk(n='swap', mode='r')]";
    assert_eq!(
        value_of(text, "d"),
        ConfigValue::List(vec![
            s("phy:/dev/vg/root,xvda,w"),
            s("phy:/dev/vg/swap,xvda,r")
        ])
    );
    assert_eq!(
        value_of("def f():\n    pass\nx = f()", "x"),
        ConfigValue::None
    );
    assert_eq!(
        value_of("g = 1\ndef f():\n    global g\n    g = 2\nf()", "g"),
        i(2)
    );
    assert_eq!(value_of("g = 1\ndef f():\n    g = 2\nf()", "g"), i(1));
}

#[test]
fn for_loops_over_lists_and_ranges_with_break_and_continue() {
    let text = "disk = []\nfor i in range(3):\n    if i == 1:\n        continue\n    disk.append('phy:/dev/sd%s,xvd%s,w' % (chr(97+i), chr(97+i)))\nfor x in [1, 2, 3]:\n    if x == 2: break\nelse:\n    never = 1";
    assert_eq!(
        value_of(text, "disk"),
        ConfigValue::List(vec![s("phy:/dev/sda,xvda,w"), s("phy:/dev/sdc,xvdc,w")])
    );
    assert!(ok(text).get("never").is_none());
    assert_eq!(
        value_of("t = 0\nfor a, b in [(1, 2), (3, 4)]:\n    t += a * b", "t"),
        i(14)
    );
    assert_eq!(value_of("n = 0\nwhile n < 5:\n    n += 2", "n"), i(6));
}

#[test]
fn arithmetic_follows_python2() {
    assert_eq!(value_of("x = 7 / 2", "x"), i(3));
    assert_eq!(value_of("x = -7 / 2", "x"), i(-4));
    assert_eq!(value_of("x = -7 % 3", "x"), i(2));
    assert_eq!(value_of("x = 7 // 2.0", "x"), ConfigValue::Float(3.0));
    assert_eq!(value_of("x = 7 / 2.0", "x"), ConfigValue::Float(3.5));
    assert_eq!(value_of("x = 2 ** 10", "x"), i(1024));
    assert_eq!(value_of("x = 1024 * 1024 - 1", "x"), i(1_048_575));
    assert_eq!(value_of("x = 0x10 | 1", "x"), i(17));
    assert_eq!(value_of("x = -(3)", "x"), i(-3));
    assert_eq!(value_of("x = True + 1", "x"), i(2));
}

#[test]
fn percent_formatting() {
    assert_eq!(value_of("x = 'VM%d' % 3", "x"), s("VM3"));
    assert_eq!(
        value_of("x = '%s-%i-%x-%r' % ('a', 2, 255, 'q')", "x"),
        s("a-2-ff-'q'")
    );
    assert_eq!(
        value_of(
            "x = '%05d|%-4s|%4s|%.2f|%%' % (42, 'ab', 'cd', 3.14159)",
            "x"
        ),
        s("00042|ab  |  cd|3.14|%")
    );
    assert_eq!(
        value_of("x = '%(name)s=%(n)d' % {'name': 'vm', 'n': 1}", "x"),
        s("vm=1")
    );
    assert_eq!(
        value_of("x = '%#x %X %o' % (255, 255, 8)", "x"),
        s("0xff FF 10")
    );
    assert_eq!(
        value_of("x = '%g %g %e' % (0.5, 1e20, 12345.678)", "x"),
        s("0.5 1e+20 1.234568e+04")
    );
    assert!(
        matches!(error_of("x = '%d %d' % (1,)"), LangErrorKind::Type(m) if m.contains("not enough"))
    );
    assert!(
        matches!(error_of("x = '%d' % (1, 2)"), LangErrorKind::Type(m) if m.contains("not all"))
    );
    assert!(matches!(error_of("x = '%d' % 'a'"), LangErrorKind::Type(_)));
}

#[test]
fn strings_quotes_escapes_raw_concatenation() {
    assert_eq!(value_of("x = 'a' \"b\" '''c''' r'\\d'", "x"), s("abc\\d"));
    assert_eq!(value_of("x = ('a'\n     'b')", "x"), s("ab"));
    assert_eq!(value_of("x = 'tab\\there'", "x"), s("tab\there"));
    assert_eq!(value_of("x = 'máquina'", "x"), s("máquina"));
}

#[test]
fn indexing_and_slicing() {
    assert_eq!(value_of("x = 'abcdef'[1:3]", "x"), s("bc"));
    assert_eq!(value_of("x = 'abcdef'[-2:]", "x"), s("ef"));
    assert_eq!(value_of("x = 'abcdef'[::-2]", "x"), s("fdb"));
    assert_eq!(value_of("x = [1, 2, 3][-1]", "x"), i(3));
    assert_eq!(
        value_of("x = (1, 2, 3)[:2]", "x"),
        ConfigValue::List(vec![i(1), i(2)])
    );
    assert_eq!(value_of("x = {'a': 1}['a']", "x"), i(1));
    assert!(matches!(error_of("x = [1][5]"), LangErrorKind::Index(_)));
    assert!(matches!(error_of("x = {}['k']"), LangErrorKind::Key(_)));
    assert!(matches!(error_of("x = 'a'[::0]"), LangErrorKind::Value(_)));
}

#[test]
fn builtins_configs_use() {
    assert_eq!(
        value_of(
            "x = int('42') + int(3.9) + int('ff', 16) + int('0x10', 0)",
            "x"
        ),
        i(42 + 3 + 255 + 16)
    );
    assert_eq!(
        value_of("x = str(5) + str(1.5) + str(None)", "x"),
        s("51.5None")
    );
    assert_eq!(value_of("x = len('abc') + len([1]) + len({})", "x"), i(4));
    assert_eq!(
        value_of("x = range(2, 8, 2)", "x"),
        ConfigValue::List(vec![i(2), i(4), i(6)])
    );
    assert_eq!(value_of("x = hex(255) + oct(8)", "x"), s("0xff010"));
    assert_eq!(
        value_of("x = list('ab')", "x"),
        ConfigValue::List(vec![s("a"), s("b")])
    );
    assert_eq!(
        value_of("x = sorted([3, 1, 2], reverse=True)", "x"),
        ConfigValue::List(vec![i(3), i(2), i(1)])
    );
    assert_eq!(
        value_of(
            "x = max([1, 5, 2]) + min(4, 2) + sum([1, 2]) + abs(-1)",
            "x"
        ),
        i(5 + 2 + 3 + 1)
    );
    assert_eq!(
        value_of("x = map(str, [1, 2])", "x"),
        ConfigValue::List(vec![s("1"), s("2")])
    );
    assert_eq!(
        value_of("x = [k for k, v in enumerate('ab')]", "x"),
        ConfigValue::List(vec![i(0), i(1)])
    );
    assert_eq!(value_of("x = dict(zip(['a'], [1]))['a']", "x"), i(1));
    assert_eq!(
        value_of("x = repr([1, 'a', None, True])", "x"),
        s("[1, 'a', None, True]")
    );
    assert!(
        matches!(error_of("x = int('abc')"), LangErrorKind::Value(m) if m.contains("invalid literal"))
    );
    assert!(
        matches!(error_of("x = open('/etc/passwd')"), LangErrorKind::Unsupported(m) if m.contains("open"))
    );
    assert!(matches!(
        error_of("x = eval('1')"),
        LangErrorKind::Unsupported(_)
    ));
}

#[test]
fn string_and_list_methods() {
    assert_eq!(value_of("x = ','.join(['a', 'b'])", "x"), s("a,b"));
    assert_eq!(
        value_of("x = ' a  b '.split()", "x"),
        ConfigValue::List(vec![s("a"), s("b")])
    );
    assert_eq!(
        value_of("x = 'a=b=c'.split('=', 1)", "x"),
        ConfigValue::List(vec![s("a"), s("b=c")])
    );
    assert_eq!(
        value_of("x = '  pad '.strip() + 'xxhixx'.strip('x')", "x"),
        s("padhi")
    );
    assert_eq!(
        value_of("x = 'a-b'.replace('-', '_').upper()", "x"),
        s("A_B")
    );
    assert_eq!(
        value_of("x = 'phy:/dev'.startswith(('file:', 'phy:'))", "x"),
        ConfigValue::Bool(true)
    );
    assert_eq!(value_of("x = 'abc'.find('c') + 'abc'.find('z')", "x"), i(1));
    assert_eq!(
        value_of("x = '{0}-{name}'.format('a', name='b')", "x"),
        s("a-b")
    );
    assert_eq!(
        value_of(
            "l = [3, 1]\nl.append(2)\nl.sort()\nl.insert(0, 9)\nx = l",
            "x"
        ),
        ConfigValue::List(vec![i(9), i(1), i(2), i(3)])
    );
    assert_eq!(
        value_of("l = [1, 2, 3]\nl.remove(2)\nx = l.pop() + l.index(1)", "x"),
        i(3)
    );
    assert_eq!(
        value_of(
            "d = {'a': 1}\nx = d.get('b', 7) + len(d.keys()) + d.has_key('a')",
            "x"
        ),
        i(9)
    );
    assert_eq!(
        value_of(
            "import string\nx = string.join(['a', 'b'], '') + string.upper('c')",
            "x"
        ),
        s("abC")
    );
    assert!(matches!(
        error_of("x = 'a'.nosuch()"),
        LangErrorKind::Attribute(_)
    ));
    assert!(
        matches!(error_of("x = ','.join([1])"), LangErrorKind::Type(m) if m.contains("expected string"))
    );
}

#[test]
fn os_environ_path_and_uname() {
    assert_eq!(
        value_of("import os\nx = os.environ['HOME']", "x"),
        s("/root")
    );
    assert_eq!(
        value_of("import os\nx = os.environ.get('NOPE', 'd')", "x"),
        s("d")
    );
    assert_eq!(
        value_of(
            "import os.path\nx = os.path.exists('/boot/vmlinuz-6.1.0-sandbox')",
            "x"
        ),
        ConfigValue::Bool(true)
    );
    assert_eq!(
        value_of("x = os.path.exists('/nope')", "x"),
        ConfigValue::Bool(false)
    );
    assert_eq!(value_of("x = os.uname()[2]", "x"), s("6.1.0-sandbox"));
    assert_eq!(
        value_of("import os\nx = os.path.join('/etc', 'xen', 'a.cfg')", "x"),
        s("/etc/xen/a.cfg")
    );
    assert_eq!(
        value_of("import os\nx = os.path.basename('/etc/xen/a.cfg')", "x"),
        s("a.cfg")
    );
    assert_eq!(value_of("x = sys.argv[0]", "x"), s("test.cfg"));
}

#[test]
fn regular_expressions() {
    assert_eq!(
        value_of(
            "import re\nm = re.match(r'(\\d+)\\.(\\d+)', '6.1.0')\nx = m.group(2)",
            "x"
        ),
        s("1")
    );
    assert_eq!(
        value_of(
            "import re\nx = re.sub(r'(\\w+)@', r'\\1 at ', 'me@host')",
            "x"
        ),
        s("me at host")
    );
    assert_eq!(
        value_of("import re\nx = re.search('z', 'abc')", "x"),
        ConfigValue::None
    );
    assert_eq!(
        value_of("import re\nx = re.split(',\\s*', 'a, b,c')", "x"),
        ConfigValue::List(vec![s("a"), s("b"), s("c")])
    );
    assert!(matches!(
        error_of("import re\nx = re.search('(a', 'b')"),
        LangErrorKind::BadRegex { .. }
    ));
}

#[test]
fn xm_vars_declarations_are_checked_with_command_line_values() {
    let text = "def vmid_check(var, val):\n    val = int(val)\n    if val <= 0:\n        raise ValueError\n    return val\nxm_vars.var('vmid', use='Virtual machine id. Integer greater than 0.', check=vmid_check)\nxm_vars.check()\nname = 'VM%d' % vmid\ndisk = ['phy:sda%d,sda1,w' % (7+vmid)]";
    let e = run_with(text, &[("vmid", "3")], true).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(e.get("name").map(|v| v.value.clone()), Some(s("VM3")));
    assert_eq!(
        e.get("disk").map(|v| v.value.clone()),
        Some(ConfigValue::List(vec![s("phy:sda10,sda1,w")]))
    );
    assert_eq!(
        e.get("vmid")
            .map(|v| (v.value.clone(), v.from_command_line)),
        Some((i(3), false))
    );

    let missing = run_with(text, &[], true);
    assert!(
        matches!(missing, Err(LangError { kind: LangErrorKind::XmVar { ref reason, ref usage, .. }, .. })
        if reason.contains("vmid=VALUE") && usage.contains("Integer greater than 0"))
    );
    let rejected = run_with(text, &[("vmid", "0")], true);
    assert!(
        matches!(rejected, Err(LangError { kind: LangErrorKind::XmVar { ref reason, .. }, .. }) if reason.contains("'0'"))
    );
}

#[test]
fn command_line_variables_win_over_the_file() {
    let e = run_with(
        "memory = 64\nname = 'a'",
        &[("memory", "256"), ("extra_var", "x")],
        true,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let memory = e
        .get("memory")
        .map(|v| (v.value.clone(), v.from_command_line));
    assert_eq!(memory, Some((s("256"), true)));
    assert!(e.get("extra_var").is_some_and(|v| v.assigned_at.is_none()));
}

#[test]
fn try_except_catches_python_errors_but_not_limits() {
    assert_eq!(
        value_of("try:\n    x = int('z')\nexcept ValueError:\n    x = 0", "x"),
        i(0)
    );
    assert_eq!(
        value_of(
            "try:\n    x = {}['k']\nexcept (IndexError, LookupError), e:\n    x = 'caught'",
            "x"
        ),
        s("caught")
    );
    assert_eq!(
        value_of(
            "try:\n    import foo\nexcept ImportError:\n    x = 1\nelse:\n    x = 2",
            "x"
        ),
        i(1)
    );
    assert!(matches!(
        error_of("try:\n    while True: pass\nexcept:\n    x = 1"),
        LangErrorKind::StepLimit(_)
    ));
    assert!(
        matches!(error_of("raise ValueError('bad config')"), LangErrorKind::Raised(m) if m.contains("bad config"))
    );
}

#[test]
fn print_output_is_collected() {
    assert_eq!(ok("print 'hello', 1").printed, vec!["hello 1".to_string()]);
}

#[test]
fn xl_style_files_are_recognised_as_the_xl_subset() {
    assert!(!ok("name = \"a\"\nmemory = 512\nvif = [ 'mac=00:16:3e:00:00:01' ]\ndisk = [ \"x\", ]\nextra = \"ro\"; extra += \" quiet\"\n; ").uses_python);
    assert!(ok("x = 1 + 1").uses_python);
}

#[test]
fn endless_loops_hit_the_step_limit() {
    assert!(matches!(
        error_of("while 1:\n    pass"),
        LangErrorKind::StepLimit(_)
    ));
    assert!(matches!(
        error_of("def f(n):\n    return f(n)\nf(1)"),
        LangErrorKind::RecursionLimit(_)
    ));
}

#[test]
fn huge_allocations_hit_the_memory_limit() {
    assert!(matches!(
        error_of("x = 'a' * 100000000"),
        LangErrorKind::MemoryLimit(_)
    ));
    assert!(matches!(
        error_of("x = range(100000000)"),
        LangErrorKind::MemoryLimit(_)
    ));
    assert!(matches!(
        error_of("x = 'ab'\nfor i in range(40):\n    x = x + x"),
        LangErrorKind::MemoryLimit(_)
    ));
}

#[test]
fn integer_overflow_is_an_error_not_a_wrap() {
    assert!(matches!(
        error_of("x = 2 ** 64"),
        LangErrorKind::Overflow(_)
    ));
    assert!(matches!(
        error_of("x = 9223372036854775807 + 1"),
        LangErrorKind::Overflow(_)
    ));
}

#[test]
fn runtime_errors_name_the_problem() {
    assert!(matches!(error_of("x = y"), LangErrorKind::UndefinedName(n) if n == "y"));
    assert!(matches!(error_of("x = 'a' + 1"), LangErrorKind::Type(m) if m.contains("concatenate")));
    assert!(matches!(
        error_of("x = 1 / 0"),
        LangErrorKind::ZeroDivision(_)
    ));
    assert!(
        matches!(error_of("x = 1 < 'a'"), LangErrorKind::Type(m) if m.contains("cannot order"))
    );
    assert!(matches!(error_of("x = 5()"), LangErrorKind::Type(m) if m.contains("not callable")));
    assert!(matches!(
        error_of("x = [1]\nx.foo = 1"),
        LangErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        error_of("a, b = [1, 2, 3]"),
        LangErrorKind::Value(_)
    ));
}

#[test]
fn cyclic_and_deep_values_are_refused_on_export() {
    let e = ok("a = []\na.append(a)\nb = 1");
    assert!(
        e.get("a").is_none(),
        "a self-containing list is not config data"
    );
    assert_eq!(e.get("b").map(|v| v.value.clone()), Some(i(1)));
    assert!(matches!(
        error_of("a = []\na.append(a)\nx = repr(a)"),
        LangErrorKind::ValueTooDeep(_)
    ));
}

#[test]
fn error_spans_point_at_the_offending_expression() {
    let text = "name = 'a'\nmemory = undefined_thing\n";
    let err = run_with(text, &[], true)
        .err()
        .unwrap_or_else(|| panic!("expected failure"));
    assert_eq!(&text[err.span.start..err.span.end], "undefined_thing");
}

#[test]
fn scans_of_big_values_cost_steps() {
    // Each `find` over a 500 kB string is cheap to write but not to run.
    let text = "s = 'a' * 500000\nn = 0\nwhile True:\n    n += s.find('b')";
    assert!(matches!(error_of(text), LangErrorKind::StepLimit(_)));
    let text = "d = {}\nfor i in range(10000):\n    d[i] = i";
    assert!(matches!(error_of(text), LangErrorKind::StepLimit(_)));
    assert_eq!(
        value_of("x = [] * 1000000000000", "x"),
        ConfigValue::List(Vec::new())
    );
    assert_eq!(
        value_of(
            "x = range(-9000000000000000000, 9000000000000000000, 6000000000000000000)",
            "x"
        ),
        ConfigValue::List(vec![
            i(-9_000_000_000_000_000_000),
            i(-3_000_000_000_000_000_000),
            i(3_000_000_000_000_000_000)
        ])
    );
    assert_eq!(
        value_of("x = [1, 2, 3][::9223372036854775807]", "x"),
        ConfigValue::List(vec![i(1)])
    );
}

#[test]
fn deepest_nesting_inside_deepest_recursion_fits_the_stack() {
    // The worst the limits allow: nesting near the parser's limit in every one of the
    // maximum number of nested calls. Must end in an error or value, not a stack overflow.
    let negations = "-".repeat(90);
    let text = format!(
        "def f(n):\n    if n > 0:\n        return {negations}f(n - 1)\n    return 0\nx = f(50)\n"
    );
    assert!(matches!(error_of(&text), LangErrorKind::TooDeep(_)));
    let nested_lists = format!("{}f(n - 1){}", "[".repeat(45), "]".repeat(45));
    let text = format!(
        "def f(n):\n    if n > 0:\n        return {nested_lists}\n    return 0\nx = f(19)\n"
    );
    assert!(matches!(error_of(&text), LangErrorKind::TooDeep(_)));
    // Ordinary recursion is fine.
    assert_eq!(
        value_of(
            "def f(n):\n    if n > 0:\n        return 1 + f(n - 1)\n    return 0\nx = f(15)",
            "x"
        ),
        i(15)
    );
}
