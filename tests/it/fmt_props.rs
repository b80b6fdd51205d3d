//! Property tests of `fmt` on generated plans: random variables, steps of
//! every kind with their attributes, lists and maps, comments between any
//! two tokens, odd spacing and blank lines. For each: formatting keeps the
//! syntax tree (spans aside) and every comment, and formatting twice
//! changes nothing more.

use proptest::prelude::*;
use proptest::sample::select;

use plan_runner::parse::{Parsed, parse};
use plan_runner::source::Source;

/// What separates two tokens: spaces, line breaks, blank lines, comments.
#[derive(Clone, Debug)]
enum Gap {
    /// Nothing at all, where the two tokens stay apart (`a=[b,c]`).
    Nothing,
    Space,
    Spaces,
    Tab,
    Newline,
    CrLf,
    BlankLine,
    BlankLineWithSpaces,
    /// A comment to the end of the line.
    Trailing(&'static str),
    /// A comment on its own line, with a blank line after it.
    OwnLine(&'static str),
}

const COMMENTS: &[&str] = &[
    "# note",
    "#tight",
    "## double hash",
    "# with \"quotes\" and { braces } [ ] = ,",
    "# lint: allow(W101)",
    "# é ünïcode ✓",
    "# trailing spaces   ",
    "# stop fake {",
    "#",
];

fn gap() -> impl Strategy<Value = Gap> {
    let comment = || select(COMMENTS);
    prop_oneof![
        3 => Just(Gap::Nothing),
        8 => Just(Gap::Space),
        1 => Just(Gap::Spaces),
        1 => Just(Gap::Tab),
        4 => Just(Gap::Newline),
        1 => Just(Gap::CrLf),
        1 => Just(Gap::BlankLine),
        1 => Just(Gap::BlankLineWithSpaces),
        2 => comment().prop_map(Gap::Trailing),
        1 => comment().prop_map(Gap::OwnLine),
    ]
}

/// String literals as written, quotes included: escapes, interpolation,
/// `$${`, several lines, Unicode.
const STRINGS: &[&str] = &[
    r#""""#,
    r#""x""#,
    r#""systemctl stop openerp-5.0""#,
    r#""python3 ${scripts}/pre.py -d ${db}""#,
    r#""a \"quoted\" word, a \\ and a\ttab\n""#,
    r#""costs $${not_a_var}""#,
    "\"\n  select count(*)\n    from ir_module_module\n   where state like 'to %'\n\"",
    r#""é ✓ 日本""#,
    r##""# not a comment""##,
    r#""{ not a brace } [ ] = ,""#,
    r#""15m""#,
    r#""1h30m""#,
];

const NAMES: &[&str] = &["a", "b", "old_server", "pre", "post_2", "x-y", "Sale"];
const VARS: &[&str] = &["db", "scripts", "new_server", "password", "n", "x_1"];
const NUMBERS: &[&str] = &["0", "2", "42", "-1", "1.5", "6.0.0"];
const MAP_KEYS: &[&str] = &["A", "PGOPTIONS", "lang", "_x"];

#[derive(Clone, Debug)]
enum Val {
    Str(&'static str),
    Number(&'static str),
    Bool(bool),
    Name(&'static str),
    List(Vec<Val>, bool),
    Map(Vec<(&'static str, bool, Val)>, Vec<bool>),
}

fn scalar() -> impl Strategy<Value = Val> {
    prop_oneof![
        4 => select(STRINGS).prop_map(Val::Str),
        1 => select(NUMBERS).prop_map(Val::Number),
        1 => any::<bool>().prop_map(Val::Bool),
        2 => select(NAMES).prop_map(Val::Name),
    ]
}

fn list() -> impl Strategy<Value = Val> {
    (prop::collection::vec(scalar(), 0..5), any::<bool>())
        .prop_map(|(items, trailing)| Val::List(items, trailing))
}

fn map() -> impl Strategy<Value = Val> {
    (
        prop::collection::vec((select(MAP_KEYS), any::<bool>(), scalar()), 0..4),
        prop::collection::vec(any::<bool>(), 4),
    )
        .prop_map(|(entries, commas)| Val::Map(entries, commas))
}

fn value() -> impl Strategy<Value = Val> {
    prop_oneof![4 => scalar(), 1 => list(), 1 => map()]
}

/// The attributes a step kind takes, each with the values it accepts.
fn attribute(kind: &'static str) -> BoxedStrategy<(&'static str, Val)> {
    let string = || select(STRINGS).prop_map(Val::Str);
    let names = || {
        prop_oneof![
            select(NAMES).prop_map(Val::Name),
            prop::collection::vec(select(NAMES).prop_map(Val::Name), 0..4)
                .prop_map(|n| Val::List(n, false)),
        ]
    };
    let common = prop_oneof![
        names().prop_map(|v| ("after", v)),
        select(&["\"90s\"", "\"15m\"", "\"2h\""][..]).prop_map(|d| ("timeout", Val::Str(d))),
        select(NUMBERS).prop_map(|n| ("retries", Val::Number(n))),
        map().prop_map(|v| ("env", v)),
        string().prop_map(|v| ("cwd", v)),
        string().prop_map(|v| ("user", v)),
        string().prop_map(|v| ("fail_on_output", v)),
        string().prop_map(|v| ("description", v)),
    ];
    let own: BoxedStrategy<(&'static str, Val)> = match kind {
        "backup" => prop_oneof![
            select(&["\"snapshot\"", "\"dump\""][..]).prop_map(|m| ("method", Val::Str(m))),
            string().prop_map(|v| ("database", v)),
            list().prop_map(|v| ("paths", v)),
            any::<bool>().prop_map(|b| ("keep", Val::Bool(b))),
        ]
        .boxed(),
        "sql" => prop_oneof![
            string().prop_map(|v| ("sql", v)),
            string().prop_map(|v| ("file", v)),
        ]
        .boxed(),
        "update" => prop_oneof![
            prop_oneof![Just(Val::Str("\"all\"")), list()].prop_map(|v| ("modules", v)),
            string().prop_map(|v| ("run", v)),
        ]
        .boxed(),
        "check" => prop_oneof![
            string().prop_map(|v| ("sql", v)),
            scalar().prop_map(|v| ("expect", v)),
            string().prop_map(|v| ("run", v)),
        ]
        .boxed(),
        _ => prop_oneof![
            string().prop_map(|v| ("run", v)),
            string().prop_map(|v| ("shell", v)),
        ]
        .boxed(),
    };
    prop_oneof![2 => own, 1 => common, 1 => (select(NAMES), value())].boxed()
}

const KINDS: &[&str] = &[
    "backup", "stop", "start", "script", "sql", "update", "check",
];

#[derive(Clone, Debug)]
struct StepModel {
    kind: &'static str,
    name: &'static str,
    attrs: Vec<(&'static str, Val)>,
}

fn step() -> impl Strategy<Value = StepModel> {
    (select(KINDS), select(NAMES)).prop_flat_map(|(kind, name)| {
        prop::collection::vec(attribute(kind), 0..5).prop_map(move |attrs| StepModel {
            kind,
            name,
            attrs,
        })
    })
}

#[derive(Clone, Debug)]
enum Expr {
    Str(&'static str),
    Number(&'static str),
    Env(&'static str, Option<&'static str>),
    Secret(&'static str),
    Target(&'static str),
}

fn expr() -> impl Strategy<Value = Expr> {
    prop_oneof![
        select(STRINGS).prop_map(Expr::Str),
        select(NUMBERS).prop_map(Expr::Number),
        (
            select(&["\"OLD_SERVER\"", "\"X\""][..]),
            prop::option::of(select(STRINGS))
        )
            .prop_map(|(n, d)| Expr::Env(n, d)),
        Just(Expr::Secret("\"ERP_PASSWORD\"")),
        select(&["database", "host", "port", "user"][..]).prop_map(Expr::Target),
    ]
}

#[derive(Clone, Debug)]
enum ItemModel {
    Plan(Vec<(&'static str, Val)>),
    Var(&'static str, Expr),
    Step(StepModel),
    OnFailure(Vec<StepModel>),
}

fn plan_block() -> impl Strategy<Value = ItemModel> {
    let optional = prop::collection::vec(
        prop_oneof![
            select(STRINGS).prop_map(|s| ("description", Val::Str(s))),
            select(STRINGS).prop_map(|s| ("update_command", Val::Str(s))),
            select(STRINGS).prop_map(|s| ("release_query", Val::Str(s))),
        ],
        0..3,
    );
    optional.prop_map(|mut attrs| {
        attrs.insert(0, ("from", Val::Str("\"5.0.0\"")));
        attrs.insert(1, ("to", Val::Str("\"6.0\"")));
        ItemModel::Plan(attrs)
    })
}

fn items() -> impl Strategy<Value = Vec<ItemModel>> {
    (
        plan_block(),
        prop::collection::vec(
            (select(VARS), expr()).prop_map(|(n, e)| ItemModel::Var(n, e)),
            0..5,
        ),
        prop::collection::vec(step().prop_map(ItemModel::Step), 0..5),
        prop::option::of(prop::collection::vec(step(), 0..3).prop_map(ItemModel::OnFailure)),
    )
        .prop_flat_map(|(plan, vars, steps, failure)| {
            let mut all = vec![plan];
            all.extend(vars);
            all.extend(steps);
            all.extend(failure);
            Just(all).prop_shuffle()
        })
}

/// Writes a model as text, taking the gaps in turn.
struct Writer {
    out: String,
    gaps: Vec<Gap>,
    next: usize,
    /// The gap after the last token, written once the next token is known.
    pending: Option<Gap>,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

impl Writer {
    fn gap(&mut self) {
        self.pending = Some(self.gaps[self.next % self.gaps.len()].clone());
        self.next += 1;
    }

    /// Writes the pending gap before `next` (the text that follows).
    fn flush(&mut self, next: &str) {
        let Some(gap) = self.pending.take() else {
            return;
        };
        match gap {
            Gap::Nothing => {
                // Two words with nothing between them would be one word.
                let joined = self.out.ends_with(is_word_char) && next.starts_with(is_word_char);
                if joined {
                    self.out.push(' ');
                }
            }
            Gap::Space => self.out.push(' '),
            Gap::Spaces => self.out.push_str("   "),
            Gap::Tab => self.out.push('\t'),
            Gap::Newline => self.out.push('\n'),
            Gap::CrLf => self.out.push_str("\r\n"),
            Gap::BlankLine => self.out.push_str("\n\n"),
            Gap::BlankLineWithSpaces => self.out.push_str("\n  \t\n    "),
            Gap::Trailing(c) => {
                self.out.push(' ');
                self.out.push_str(c);
                self.out.push('\n');
            }
            Gap::OwnLine(c) => {
                self.out.push('\n');
                self.out.push_str(c);
                self.out.push_str("\n\n");
            }
        }
    }

    /// A token, then a gap.
    fn token(&mut self, text: &str) {
        self.flush(text);
        self.out.push_str(text);
        self.gap();
    }

    fn value(&mut self, value: &Val) {
        match value {
            Val::Str(s) | Val::Number(s) | Val::Name(s) => self.token(s),
            Val::Bool(b) => self.token(&b.to_string()),
            Val::List(items, trailing) => {
                self.token("[");
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        self.token(",");
                    }
                    self.value(item);
                }
                if *trailing && !items.is_empty() {
                    self.token(",");
                }
                self.token("]");
            }
            Val::Map(entries, commas) => {
                self.token("{");
                for (n, (key, quoted, value)) in entries.iter().enumerate() {
                    if *quoted {
                        self.token(&format!("\"{key}\""));
                    } else {
                        self.token(key);
                    }
                    self.token("=");
                    self.value(value);
                    if commas.get(n).copied().unwrap_or(false) {
                        self.token(",");
                    }
                }
                self.token("}");
            }
        }
    }

    fn attrs(&mut self, attrs: &[(&'static str, Val)]) {
        self.token("{");
        for (key, value) in attrs {
            self.token(key);
            self.token("=");
            self.value(value);
        }
        self.token("}");
    }

    fn step(&mut self, step: &StepModel) {
        self.token(step.kind);
        self.token(step.name);
        self.attrs(&step.attrs);
    }

    fn item(&mut self, item: &ItemModel) {
        match item {
            ItemModel::Plan(attrs) => {
                self.token("plan");
                self.token("\"acme 5.0 to 6.0\"");
                self.attrs(attrs);
            }
            ItemModel::Var(name, expr) => {
                self.token("var");
                self.token(name);
                self.token("=");
                match expr {
                    Expr::Str(s) | Expr::Number(s) => self.token(s),
                    Expr::Env(name, default) => {
                        self.token("env");
                        self.token("(");
                        self.token(name);
                        if let Some(default) = default {
                            self.token(",");
                            self.token(default);
                        }
                        self.token(")");
                    }
                    Expr::Secret(name) => {
                        self.token("secret");
                        self.token("(");
                        self.token(name);
                        self.token(")");
                    }
                    Expr::Target(field) => self.token(&format!("target.{field}")),
                }
            }
            ItemModel::Step(step) => self.step(step),
            ItemModel::OnFailure(steps) => {
                self.token("on_failure");
                self.token("{");
                for step in steps {
                    self.step(step);
                }
                self.token("}");
            }
        }
    }
}

fn plan_text() -> impl Strategy<Value = String> {
    (
        items(),
        prop::collection::vec(gap(), 1..40),
        any::<bool>(),
        prop::option::of(select(COMMENTS)),
    )
        .prop_map(|(items, gaps, lead, last_comment)| {
            let mut writer = Writer {
                out: String::new(),
                gaps,
                next: 0,
                pending: None,
            };
            if lead {
                writer.gap();
            }
            for item in &items {
                writer.item(item);
            }
            writer.flush("");
            if let Some(comment) = last_comment {
                // A comment that ends the file, with no newline after it.
                writer.out.push('\n');
                writer.out.push_str(comment);
            }
            writer.out
        })
}

fn parse_clean(text: &str, what: &str) -> Parsed {
    let parsed = parse(&Source::new("gen.plan", text));
    assert!(
        parsed.diagnostics.is_empty(),
        "{what} does not parse: {:#?}\n--- text ---\n{text}",
        parsed.diagnostics
    );
    parsed
}

fn format(text: &str) -> String {
    let source = Source::new("gen.plan", text);
    let parsed = parse_clean(text, "the input");
    plan_runner::fmt::format(&parsed.file, &source)
}

fn sorted_comments(parsed: &Parsed) -> Vec<String> {
    let mut texts: Vec<String> = parsed
        .file
        .comments
        .iter()
        .map(|c| c.text.clone())
        .collect();
    texts.sort();
    texts
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fmt_keeps_the_tree_and_every_comment(text in plan_text()) {
        let before = parse_clean(&text, "the input");
        let formatted = format(&text);
        let after = parse_clean(&formatted, "the formatted text");
        let tree = |p: &Parsed| serde_json::to_value(&p.file.items).expect("the AST serializes");
        prop_assert_eq!(
            tree(&before),
            tree(&after),
            "the tree changed\n--- input ---\n{}\n--- formatted ---\n{}",
            text,
            formatted
        );
        prop_assert_eq!(
            sorted_comments(&before),
            sorted_comments(&after),
            "comments changed\n--- input ---\n{}\n--- formatted ---\n{}",
            text,
            formatted
        );
    }

    #[test]
    fn fmt_is_idempotent(text in plan_text()) {
        let once = format(&text);
        let twice = format(&once);
        prop_assert_eq!(
            &once,
            &twice,
            "formatting twice changed it\n--- input ---\n{}",
            text
        );
    }
}

/// On hand-written plans, where comments sit on their own lines or at the
/// end of a line, `fmt` keeps them in their order too.
#[test]
fn fmt_keeps_comments_in_order_on_the_fixtures() {
    let mut files: Vec<_> = ["tests/fixtures/parse/ok", "plans"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).expect("a fixture folder"))
        .map(|entry| entry.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "plan"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a fixture");
        let before = parse_clean(&text, "the fixture");
        let formatted = format(&text);
        let after = parse_clean(&formatted, "the formatted fixture");
        let texts = |p: &Parsed| -> Vec<String> {
            p.file.comments.iter().map(|c| c.text.clone()).collect()
        };
        assert_eq!(
            texts(&before),
            texts(&after),
            "{}:\n{formatted}",
            path.display()
        );
        assert_eq!(
            serde_json::to_value(&before.file).expect("serializes"),
            serde_json::to_value(&after.file).expect("serializes"),
            "{}",
            path.display()
        );
        assert_eq!(format(&formatted), formatted, "{}", path.display());
    }
}
