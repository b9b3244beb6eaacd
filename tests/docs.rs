//! Docs that match the code (a doc that contradicts the code is a bug).
//!
//! Cheap checks that fail as soon as the documentation drifts:
//!
//! - every source path a doc names (`service/src/…`, `verifier/src/…`,
//!   `pki/src/…`, `agent/src/…`, `api/src/…`, `*/tests/…`, …) exists;
//! - every `file.rs::name` test reference names a function in that file;
//! - the errcode table of docs/api.md §5 is exactly
//!   `govtrust_service::error::ERRCODES` (codes, order and HTTP statuses),
//!   and no doc mentions an errcode that does not exist;
//! - every `govtrust …` command line in the code blocks of README.md and
//!   docs/*.md names subcommands and flags that `govtrust … --help` lists.
//!
//! Each checker is also run on a drifted sample, so a check that stopped
//! finding anything would fail instead of passing vacuously.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The documents checked: docs/*.md, README.md, ARCHITECTURE.md and the
/// READMEs of fuzz/ and certs-example/.
fn documents() -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| {
            e.expect("docs entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    names.sort();
    names.extend(
        [
            "README.md",
            "ARCHITECTURE.md",
            "fuzz/README.md",
            "certs-example/README.md",
        ]
        .map(String::from),
    );
    names
        .into_iter()
        .map(|n| {
            let text = read(&n);
            (n, text)
        })
        .collect()
}

// ----- (a) source paths -----------------------------------------------------

/// Top-level directories whose paths the docs name.
const ROOTS: &[&str] = &[
    "service/",
    "verifier/",
    "pki/",
    "agent/",
    "api/",
    "bench/",
    "fuzz/",
    "wasm/",
    "src/",
    "tests/",
    "scripts/",
    "deploy/",
    "docs/",
    "certs-example/",
];

fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Every repository path in `text` that starts at one of [`ROOTS`], without
/// placeholders (`…`, `*`, `<…>`) and without trailing sentence punctuation.
fn source_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in ROOTS {
        for (at, _) in text.match_indices(root) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| path_char(c) || c == '@' || c == ':') {
                continue;
            }
            let rest = &text[at..];
            let end = rest.find(|c: char| !path_char(c)).unwrap_or(rest.len());
            let after = rest[end..].chars().next();
            if matches!(after, Some('…' | '*' | '<' | '{')) {
                continue;
            }
            let path = rest[..end].trim_end_matches('.');
            // "verifier/raw 1.3×" is prose: a path ends in `/`, has a file
            // name with an extension, or has a directory below the root.
            let last = path.rsplit('/').next().unwrap_or("");
            if path.ends_with('/') || last.contains('.') || path.matches('/').count() > 1 {
                found.push(path.to_owned());
            }
        }
    }
    found
}

fn missing_paths(text: &str) -> Vec<String> {
    source_paths(text)
        .into_iter()
        .filter(|p| !repo().join(p).exists())
        .collect()
}

#[test]
fn every_source_path_in_the_docs_exists() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for (name, text) in documents() {
        seen += source_paths(&text).len();
        for p in missing_paths(&text) {
            missing.push(format!("{name}: {p}"));
        }
    }
    assert!(
        seen > 50,
        "found only {seen} source paths: is the scanner broken?"
    );
    assert!(
        missing.is_empty(),
        "docs name paths that do not exist:\n{}",
        missing.join("\n")
    );
    // The checker itself: drift is caught, placeholders are not.
    assert_eq!(
        missing_paths("see `service/src/pki.rs`, `src/service/pki.rs` and `service/src/nope.rs`."),
        ["service/src/nope.rs", "src/service/pki.rs"]
    );
    assert!(missing_paths("`verifier/src/…` and `service/src/<module>.rs`").is_empty());
}

/// `path/to/file.rs::name` (and the `::other` that follow it in the same
/// list) must name a function of that file; `::name` is a placeholder.
fn test_references(text: &str) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    let mut current: Option<String> = None;
    let mut rest = text;
    while let Some(at) = rest.find("::") {
        let head = &rest[..at];
        let start = head.rfind(|c: char| !path_char(c)).map_or(0, |i| {
            i + head[i..].chars().next().map_or(1, char::len_utf8)
        });
        let file = &head[start..];
        // A new paragraph or list item ends a `::other` continuation.
        if head.contains("\n\n") || head.contains("\n- ") {
            current = None;
        }
        let tail = &rest[at + 2..];
        let name_end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..name_end];
        if file.ends_with(".rs") && file.contains('/') {
            current = Some(file.to_owned());
            refs.push((file.to_owned(), name.to_owned()));
        } else if file.is_empty() && head.ends_with('`') {
            // "`::other`" continues the last file named in this paragraph.
            if let Some(f) = &current {
                refs.push((f.clone(), name.to_owned()));
            }
        }
        rest = &tail[name_end..];
    }
    refs.retain(|(_, n)| {
        !n.is_empty() && n != "name" && n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
    });
    refs
}

fn dangling_test_references(text: &str) -> Vec<String> {
    test_references(text)
        .into_iter()
        .filter(|(file, name)| {
            let Ok(source) = std::fs::read_to_string(repo().join(file)) else {
                return true;
            };
            !source.contains(&format!("fn {name}("))
        })
        .map(|(file, name)| format!("{file}::{name}"))
        .collect()
}

#[test]
fn every_test_reference_names_a_test() {
    let mut dangling = Vec::new();
    let mut seen = 0;
    for (name, text) in documents() {
        seen += test_references(&text).len();
        for r in dangling_test_references(&text) {
            dangling.push(format!("{name}: {r}"));
        }
    }
    assert!(
        seen > 20,
        "found only {seen} test references: is the scanner broken?"
    );
    assert!(
        dangling.is_empty(),
        "docs name tests that do not exist:\n{}",
        dangling.join("\n")
    );
    assert_eq!(
        dangling_test_references(
            "`tests/cli.rs::no_such_test_here`, `tests/cli.rs::name` (a placeholder)"
        ),
        ["tests/cli.rs::no_such_test_here"]
    );
}

// ----- (b) errcodes -----------------------------------------------------------

/// The rows of docs/api.md §5's table: (errcode, HTTP status).
fn errcode_table(api_md: &str) -> Vec<(String, u16)> {
    let text = format!("\n{api_md}");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("5. Error codes"))
        .expect("docs/api.md has a section \"## 5. Error codes\"");
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix("`GT_")?.strip_suffix('`')?;
            let status = cells.get(2)?.parse().ok()?;
            Some((format!("GT_{code}"), status))
        })
        .collect()
}

/// Every `GT_…` name in `text` (placeholders such as `GT_…` excluded).
fn errcodes_mentioned(text: &str) -> Vec<String> {
    text.match_indices("GT_")
        .filter(|(at, _)| {
            !text[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .filter_map(|(at, _)| {
            let tail = &text[at + 3..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or(tail.len());
            let name = tail[..end].trim_end_matches('_');
            (!name.is_empty()).then(|| format!("GT_{name}"))
        })
        .collect()
}

#[test]
fn api_errcode_table_is_the_code_list() {
    let table = errcode_table(&read("docs/api.md"));
    let code: Vec<(String, u16)> = govtrust_service::error::ERRCODES
        .iter()
        .map(|(c, s)| ((*c).to_owned(), *s))
        .collect();
    assert_eq!(
        table, code,
        "docs/api.md §5 (left) differs from ERRCODES in service/src/error.rs (right)"
    );
    // Drift in either direction is caught.
    let drifted = "## 5. Error codes\n\n| errcode | HTTP |\n|---|---|\n| `GT_BAD_JSON` | 400 |\n| `GT_GONE` | 410 |\n";
    assert_ne!(errcode_table(drifted), code);
    assert_eq!(
        errcode_table(drifted),
        [("GT_BAD_JSON".to_owned(), 400), ("GT_GONE".to_owned(), 410)]
    );
}

#[test]
fn no_doc_mentions_an_unknown_errcode() {
    let known: Vec<&str> = govtrust_service::error::ERRCODES
        .iter()
        .map(|(c, _)| *c)
        .collect();
    let mut unknown = Vec::new();
    for (name, text) in documents() {
        for code in errcodes_mentioned(&text) {
            if !known.contains(&code.as_str()) {
                unknown.push(format!("{name}: {code}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "docs mention errcodes the service does not have:\n{}",
        unknown.join("\n")
    );
    assert_eq!(
        errcodes_mentioned("`GT_…`, GT_NOT_FOUND, GT_GONE."),
        ["GT_NOT_FOUND", "GT_GONE"]
    );
}

// ----- (c) command lines ----------------------------------------------------------

/// `govtrust <path…> --help`, memoised.
struct Help {
    cache: BTreeMap<Vec<String>, String>,
}

impl Help {
    fn new() -> Self {
        Help {
            cache: BTreeMap::new(),
        }
    }

    fn of(&mut self, path: &[String]) -> &str {
        self.cache.entry(path.to_vec()).or_insert_with(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_govtrust"))
                .args(path)
                .arg("--help")
                .output()
                .expect("running govtrust --help");
            assert!(
                out.status.success(),
                "govtrust {} --help failed: {}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    }
}

/// The subcommand names a help text lists under "Commands:".
fn subcommands(help: &str) -> Vec<String> {
    let Some(at) = help.find("\nCommands:\n") else {
        return Vec::new();
    };
    help[at + "\nCommands:\n".len()..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn lists_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        !help[at + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// `govtrust …` command lines in the fenced code blocks of `text`, with
/// continuation lines joined and comments removed.
fn command_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut pending: Option<String> = None;
    for raw in text.lines() {
        if raw.trim_start().starts_with("```") {
            in_block = !in_block;
            pending = None;
            continue;
        }
        if !in_block {
            continue;
        }
        let line = match raw.find(" #") {
            Some(i) => &raw[..i],
            None => raw,
        }
        .trim();
        let (body, continues) = match line.strip_suffix('\\') {
            Some(b) => (b.trim(), true),
            None => (line, false),
        };
        let joined = match pending.take() {
            Some(p) => format!("{p} {body}"),
            None if body.starts_with("govtrust ") => body.to_owned(),
            None => continue,
        };
        if continues {
            pending = Some(joined);
        } else {
            lines.push(joined);
        }
    }
    lines
}

/// What is wrong with one `govtrust …` command line, if anything.
fn check_command(help: &mut Help, line: &str) -> Option<String> {
    let words: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_owned())
        .collect();
    let mut path: Vec<String> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    let mut descending = true;
    for word in &words {
        if word.starts_with("--") {
            let flag = word.split('=').next().unwrap_or(word).to_owned();
            // `--json` is global and takes no value: the path goes on after it.
            descending &= flag == "--json";
            flags.push(flag);
            continue;
        }
        if !descending {
            continue;
        }
        let commands = subcommands(help.of(&path));
        if commands.is_empty() {
            descending = false;
        } else if commands.contains(word) {
            path.push(word.clone());
        } else {
            return Some(format!(
                "`govtrust {}` has no subcommand {word:?} (it has: {})",
                path.join(" "),
                commands.join(", ")
            ));
        }
    }
    if !subcommands(help.of(&path)).is_empty() {
        return Some(format!("`govtrust {}` needs a subcommand", path.join(" ")));
    }
    let text = help.of(&path).to_owned();
    let unknown: Vec<&String> = flags.iter().filter(|f| !lists_flag(&text, f)).collect();
    (!unknown.is_empty()).then(|| {
        format!(
            "`govtrust {}` has no option {}",
            path.join(" "),
            unknown
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

#[test]
fn every_documented_command_line_parses() {
    let mut help = Help::new();
    let mut problems = Vec::new();
    let mut seen = 0;
    for (name, text) in documents() {
        if !(name == "README.md" || name.starts_with("docs/")) {
            continue;
        }
        for line in command_lines(&text) {
            seen += 1;
            if let Some(p) = check_command(&mut help, &line) {
                problems.push(format!("{name}: {line}\n    {p}"));
            }
        }
    }
    assert!(
        seen > 30,
        "found only {seen} command lines: is the scanner broken?"
    );
    assert!(
        problems.is_empty(),
        "documented commands that govtrust does not have:\n{}",
        problems.join("\n")
    );

    // README's CLI tour in particular names each top-level command it shows.
    let readme = read("README.md");
    let tour = readme
        .split("\n## ")
        .find(|s| s.starts_with("CLI tour"))
        .expect("README.md has a section \"## CLI tour\"");
    let top = subcommands(help.of(&[]));
    let tour_commands = command_lines(tour);
    assert!(
        tour_commands.len() >= 8,
        "the CLI tour shows {} commands",
        tour_commands.len()
    );
    for line in &tour_commands {
        let first = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            top.contains(&first.to_owned()),
            "README CLI tour: `{line}`: no command {first:?}"
        );
    }

    // The checker itself catches drift.
    let drifted = "```sh\ngovtrust ca frobnicate --dir ca\ngovtrust crl --dir ca \\\n    --no-such-flag\ngovtrust ca\n```\n";
    let found: Vec<Option<String>> = command_lines(drifted)
        .iter()
        .map(|l| check_command(&mut help, l))
        .collect();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(Option::is_some), "{found:?}");
    assert!(check_command(&mut help, "govtrust --json audit verify --config x.toml").is_none());
}

#[test]
fn json_is_a_global_flag() {
    // README.md says every command takes --json: it must be global.
    let mut help = Help::new();
    for path in [
        vec![],
        vec!["inspect".to_owned()],
        vec!["ca".to_owned(), "init".to_owned()],
    ] {
        assert!(
            lists_flag(help.of(&path), "--json"),
            "govtrust {} --help lacks --json",
            path.join(" ")
        );
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_govtrust")).exists());
}

// ----- the API: OpenAPI schemas and routes ------------------------------------------

/// The service's API source: `service/src/api.rs`, or the files of
/// `service/src/api/` if the module is split.
fn api_source() -> String {
    let mut text = std::fs::read_to_string(repo().join("service/src/api.rs")).unwrap_or_default();
    if let Ok(dir) = std::fs::read_dir(repo().join("service/src/api")) {
        let mut files: Vec<PathBuf> = dir.map(|e| e.expect("entry").path()).collect();
        files.sort();
        for f in files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        {
            text.push_str(&std::fs::read_to_string(f).expect("api module"));
        }
    }
    assert!(
        !text.is_empty(),
        "neither service/src/api.rs nor service/src/api/"
    );
    text
}

/// The names in `#[openapi(components(schemas(…)))]`.
fn openapi_components(source: &str) -> Vec<String> {
    let start = source
        .find("components(schemas(")
        .expect("an #[openapi(components(schemas(…)))]")
        + "components(schemas(".len();
    let end = start + source[start..].find(')').expect("closing parenthesis");
    source[start..end]
        .split(',')
        .map(|n| n.trim().rsplit("::").next().unwrap_or("").to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The backticked names of docs/api.md §8's schema bullet.
fn documented_schemas(api_md: &str) -> Vec<String> {
    let at = api_md
        .find("- the schemas ")
        .expect("docs/api.md §8 lists \"the schemas\"");
    let bullet = &api_md[at..];
    let bullet = &bullet[..bullet.find(';').expect("the list ends with ';'")];
    bullet
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Whether a type `name` is declared in the service or the API crate.
fn type_declared(name: &str) -> bool {
    fn walk(dir: &Path, needles: &[String]) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, needles)
                } else {
                    p.extension().is_some_and(|x| x == "rs")
                        && std::fs::read_to_string(&p)
                            .is_ok_and(|t| needles.iter().any(|n| t.contains(n.as_str())))
                }
            })
    }
    let needles = [
        format!("struct {name} "),
        format!("enum {name} "),
        format!("struct {name}<"),
    ];
    ["service/src", "api/src"]
        .iter()
        .any(|d| walk(&repo().join(d), &needles))
}

#[test]
fn api_openapi_schema_list_matches_the_code() {
    let components = openapi_components(&api_source());
    let documented = documented_schemas(&read("docs/api.md"));
    assert!(components.len() >= 10, "parsed only {components:?}");
    let undocumented: Vec<&String> = components
        .iter()
        .filter(|c| !documented.contains(c))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/api.md §8 lacks the OpenAPI schemas {undocumented:?}"
    );
    let unknown: Vec<&String> = documented.iter().filter(|d| !type_declared(d)).collect();
    assert!(
        unknown.is_empty(),
        "docs/api.md §8 lists schemas no type declares: {unknown:?}"
    );
    // Drift is caught.
    assert!(!type_declared("NoSuchSchemaType"));
    assert_eq!(
        openapi_components(
            "#[openapi(components(schemas(ErrorBody, crate::x::Gone)), modifiers())]"
        ),
        ["ErrorBody", "Gone"]
    );
}

/// (method, path) of every `.route(…)` in the API source.
fn code_routes(source: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for piece in source.split(".route(").skip(1) {
        let Some(path) = piece
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split('"').next())
        else {
            continue;
        };
        let body = piece.split(".fallback(").next().unwrap_or(piece);
        for method in ["get", "post", "put", "delete", "patch"] {
            let called = body.match_indices(&format!("{method}(")).any(|(at, _)| {
                !body[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if called {
                routes.push((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes.sort();
    routes
}

/// (method, path) of docs/api.md §3's endpoint table.
fn documented_routes(api_md: &str) -> Vec<(String, String)> {
    let text = format!("\n{api_md}");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("3. Endpoints"))
        .expect("docs/api.md has \"## 3. Endpoints\"");
    let mut routes: Vec<(String, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let method = *cells.get(1)?;
            if !["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method) {
                return None;
            }
            let path = cells.get(2)?.split('`').nth(1)?;
            Some((method.to_owned(), path.to_owned()))
        })
        .collect();
    routes.sort();
    routes
}

#[test]
fn api_endpoint_table_matches_the_routes() {
    let code = code_routes(&api_source());
    assert!(code.len() >= 15, "parsed only {code:?}");
    assert_eq!(
        documented_routes(&read("docs/api.md")),
        code,
        "docs/api.md §3 (left) differs from the routes in service/src/api.rs (right)"
    );
    assert_eq!(
        code_routes(
            ".route(\n \"/a\", get(x).post(y)) .route(\"/b/{id}\", put(z)) .fallback(|| async {})"
        ),
        [
            ("GET".to_owned(), "/a".to_owned()),
            ("POST".to_owned(), "/a".to_owned()),
            ("PUT".to_owned(), "/b/{id}".to_owned())
        ]
    );
}
