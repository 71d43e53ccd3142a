//! The printer: results go to stdout as tables or exactly one JSON document; warnings,
//! progress and errors go to stderr. All of amictl's output passes through here.
#![allow(clippy::print_stderr)]

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, Width};
use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    /// GitHub-flavoured markdown: for `$GITHUB_STEP_SUMMARY` and pull request comments.
    Markdown,
}

impl OutputFormat {
    pub const CHOICES: &[&str] = &["table", "json", "markdown"];
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "json" => Ok(OutputFormat::Json),
            "markdown" => Ok(OutputFormat::Markdown),
            _ => Err(format!(
                "'{s}' is not an output format: expected table, json or markdown"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub const CHOICES: &[&str] = &["auto", "always", "never"];
}

impl std::str::FromStr for ColorChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ColorChoice::Auto),
            "always" => Ok(ColorChoice::Always),
            "never" => Ok(ColorChoice::Never),
            _ => Err(format!("'{s}' is not a colour choice: expected auto, always or never")),
        }
    }
}

/// A command's result: serializes as its JSON face, renders its table face.
pub trait Render: Serialize {
    /// The tables that show this result; empty when there is nothing to show.
    fn tables(&self, printer: &Printer) -> Vec<Table>;

    /// What is written of this result: its tables, a long one's rows made only as they are
    /// written (see [`LongTable`]).
    fn shown<'a>(&'a self, printer: &'a Printer) -> Vec<Shown<'a>> {
        self.tables(printer).into_iter().map(Shown::Table).collect()
    }

    /// Said on stderr when there are no tables to print (e.g. "no images found").
    fn empty_note(&self) -> Option<String> {
        None
    }

    /// The heading of the markdown face (`-o markdown`), e.g. "Cleanup plan".
    fn title(&self) -> Option<String> {
        None
    }
}

/// Rows of a long table rendered at once (see [`Printer::write_shown`]).
const ROWS_AT_ONCE: usize = 256;

/// A table of a result, as it is written.
pub enum Shown<'a> {
    Table(Table),
    Long(LongTable<'a>),
}

/// A table too long to hold as cells (a plan across an organization: thousands of rows):
/// its rows are made as they are written, a few hundred at a time.
pub struct LongTable<'a> {
    /// The table without rows: the header, in the house style.
    pub head: Table,
    /// Makes the rows, each time asked: twice when written off a terminal, once to measure
    /// the columns and once to write them.
    pub rows: Box<dyn Fn() -> Rows<'a> + 'a>,
}

/// The rows of a [`LongTable`], each its cells.
pub type Rows<'a> = Box<dyn Iterator<Item = Vec<Cell>> + 'a>;

impl Shown<'_> {
    /// The whole table, every row's cells held at once.
    pub fn into_table(self) -> Table {
        match self {
            Shown::Table(table) => table,
            Shown::Long(long) => {
                let mut table = long.head;
                for row in (long.rows)() {
                    table.add_row(row);
                }
                table
            }
        }
    }
}

/// The run's one printer. Made once, in `main`, and lent to everything that speaks.
#[derive(Debug)]
pub struct Printer {
    format: OutputFormat,
    color: bool,
    quiet: bool,
    now: Timestamp,
    /// stdout's reader went away (`amictl … | head -1`): nothing more is written there, and
    /// that alone is not a failure; the command's own outcome decides the exit code.
    stdout_closed: AtomicBool,
}

impl Printer {
    /// A printer for one run, measuring ages from the run's clock, `now`.
    pub fn new(format: OutputFormat, color: ColorChoice, quiet: bool, now: Timestamp) -> Printer {
        Printer {
            format,
            color: format == OutputFormat::Table && use_color(color, std::io::stdout().is_terminal()),
            quiet,
            now,
            stdout_closed: AtomicBool::new(false),
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// The moment ages are shown from: the run's clock (every row agrees, and with the plan).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Prints a result on stdout in the chosen format. A closed stdout is not an error here:
    /// the reader has what it wanted, and the command's outcome still decides the exit code.
    pub fn print<T: Render>(&self, result: &T) -> anyhow::Result<()> {
        self.to_stdout(|| self.write_result(result))
    }

    /// Bytes made elsewhere (a completion script, a man page) on stdout, as they are.
    pub fn raw(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.to_stdout(|| {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        })
    }

    fn to_stdout(&self, write: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        if self.stdout_closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        match write() {
            Err(err) if crate::error::is_broken_pipe(&err) => {
                self.stdout_closed.store(true, Ordering::SeqCst);
                Ok(())
            }
            other => other,
        }
    }

    fn write_result<T: Render>(&self, result: &T) -> anyhow::Result<()> {
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        match self.format {
            OutputFormat::Json => {
                // Streamed: a big account's JSON is never held whole in memory.
                serde_json::to_writer_pretty(&mut stdout, result).map_err(|err| match err.io_error_kind() {
                    Some(kind) => anyhow::Error::new(std::io::Error::from(kind)),
                    None => anyhow::Error::new(err),
                })?;
                stdout.write_all(b"\n")?;
            }
            OutputFormat::Table | OutputFormat::Markdown => {
                let tables = result.shown(self);
                if tables.is_empty()
                    && let Some(note) = result.empty_note()
                {
                    self.note(note);
                }
                let markdown = self.format == OutputFormat::Markdown;
                if markdown && let Some(title) = result.title() {
                    writeln!(stdout, "### {}\n", markdown_text(&title))?;
                }
                for (i, table) in tables.into_iter().enumerate() {
                    if i > 0 {
                        stdout.write_all(b"\n")?;
                    }
                    if markdown {
                        write_markdown_table(&mut stdout, &table.into_table())?;
                    } else {
                        self.write_shown(&mut stdout, table)?;
                    }
                }
            }
        }
        stdout.flush()?;
        Ok(())
    }

    /// A JSON array written element by element, for results too big to hold whole (`-o json`
    /// across an organization): see [`JsonArray`].
    pub fn json_array(&self) -> JsonArray<'_> {
        JsonArray {
            printer: self,
            started: false,
        }
    }

    /// A result's tables on stderr, whatever the format: a plan shown before asking.
    pub fn show_on_stderr<T: Render>(&self, result: &T) {
        let mut stderr = std::io::BufWriter::new(std::io::stderr().lock());
        for table in result.shown(self) {
            // Nothing to do if stderr can't be written.
            if self.write_shown(&mut stderr, table).is_err() {
                return;
            }
        }
        let _ = stderr.flush();
    }

    /// A table, line by line. On a terminal it is fitted to the terminal's width, which
    /// depends on every row: it is rendered whole. Elsewhere a long one is rendered
    /// [`ROWS_AT_ONCE`] rows at a time, each part with the whole table's column widths and
    /// without the borders between parts, so that it reads as one table: comfy-table pads
    /// every cell of the rows it renders before the first line comes out (a second copy of the
    /// cells), and a [`LongTable`]'s rows are made a part at a time too.
    fn write_shown(&self, out: &mut impl Write, shown: Shown<'_>) -> std::io::Result<()> {
        let whole = match &shown {
            Shown::Table(table) => table.row_count() <= ROWS_AT_ONCE || table.width().is_some(),
            Shown::Long(long) => long.head.width().is_some(),
        };
        if whole {
            for line in shown.into_table().lines() {
                writeln!(out, "{line}")?;
            }
            return Ok(());
        }
        match shown {
            Shown::Table(table) => {
                let rows = || -> Rows<'_> { Box::new(table.row_iter().map(|row| row.cell_iter().cloned().collect())) };
                self.write_in_parts(out, table.header(), &rows)
            }
            Shown::Long(long) => self.write_in_parts(out, long.head.header(), &long.rows),
        }
    }

    /// A table a part at a time: once to measure its columns, then to write them.
    fn write_in_parts<'a>(
        &self,
        out: &mut impl Write,
        header: Option<&comfy_table::Row>,
        rows: &dyn Fn() -> Rows<'a>,
    ) -> std::io::Result<()> {
        let mut widths: Vec<u16> = Vec::new();
        self.each_part(header, rows(), |part, _, _| {
            let part_widths = part.column_max_content_widths();
            widths.resize(widths.len().max(part_widths.len()), 0);
            for (width, part_width) in widths.iter_mut().zip(part_widths) {
                *width = (*width).max(part_width);
            }
            Ok(())
        })?;
        // Fixed widths count the cell's padding, one space each side.
        let widths: Vec<ColumnConstraint> = (widths.into_iter())
            .map(|width| ColumnConstraint::Absolute(Width::Fixed(width.saturating_add(2))))
            .collect();
        self.each_part(header, rows(), |part, first, last| {
            part.set_content_arrangement(ContentArrangement::Disabled)
                .set_constraints(widths.iter().copied());
            let lines: Vec<String> = part.lines().collect();
            // The top border opens the table, the bottom one closes it.
            let (from, to) = (usize::from(!first), lines.len() - usize::from(!last));
            for line in &lines[from..to] {
                writeln!(out, "{line}")?;
            }
            Ok(())
        })
    }

    /// Each part of [`ROWS_AT_ONCE`] rows as a table (the header in the first), with whether
    /// it is the first and the last.
    fn each_part(
        &self,
        header: Option<&comfy_table::Row>,
        rows: Rows<'_>,
        mut write: impl FnMut(&mut Table, bool, bool) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut rows = rows.peekable();
        let mut first = true;
        loop {
            let mut part = self.table(&[]);
            if let Some(header) = header.filter(|_| first) {
                part.set_header(header.clone());
            }
            for row in rows.by_ref().take(ROWS_AT_ONCE) {
                part.add_row(row);
            }
            let last = rows.peek().is_none();
            write(&mut part, first, last)?;
            if last {
                return Ok(());
            }
            first = false;
        }
    }

    /// A table in the house style, coloured only when colour is on.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table
            .load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if self.color {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        if !header.is_empty() {
            table.set_header(header.to_vec());
        }
        table
    }

    /// A cell in a colour, when colour is on.
    pub fn colored(&self, text: impl Display, color: Option<Color>) -> Cell {
        let cell = Cell::new(for_terminal(&text.to_string()));
        match color {
            Some(color) if self.color => cell.fg(color),
            _ => cell,
        }
    }

    /// A warning on stderr, unless `--quiet`.
    pub fn warn(&self, message: impl Display) {
        if !self.quiet {
            eprintln!("warning: {}", for_stderr(&message.to_string()));
        }
    }

    /// A progress line on stderr: redrawn in place on a terminal, plain lines otherwise,
    /// nothing with `--quiet`.
    pub fn progress(&self) -> Progress {
        let style = if self.quiet {
            ProgressStyle::Silent
        } else if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            ProgressStyle::Terminal(bar)
        } else {
            ProgressStyle::Lines { last: None }
        };
        Progress { style }
    }

    /// Progress lines of work going on side by side (one per region): one line each on a
    /// terminal, redrawn in place; plain lines otherwise; nothing with `--quiet`.
    pub fn progress_lines(&self) -> ProgressLines {
        ProgressLines {
            terminal: (!self.quiet && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new),
            quiet: self.quiet,
        }
    }

    /// A progress bar for `total` steps; see [`Counter`].
    pub fn counter(&self, total: usize, what: &str) -> Counter {
        self.counter_shown(total, what, total > 0)
    }

    /// A progress bar for steps not known yet: each is added with [`Counter::more`] as it
    /// is known (an organization's accounts × regions, as the accounts are listed).
    pub fn growing_counter(&self, what: &str) -> Counter {
        self.counter_shown(0, what, true)
    }

    fn counter_shown(&self, total: usize, what: &str, shown: bool) -> Counter {
        let shown = shown && !self.quiet && std::io::stderr().is_terminal();
        let bar = shown.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.set_message(what.to_owned());
            bar
        });
        Counter { bar }
    }

    /// Whether a person is there to answer a question: stdin and stderr are terminals.
    #[allow(clippy::unused_self)] // questions go through the printer, which owns stderr
    pub fn can_ask(&self) -> bool {
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    /// Asks a yes/no question on the terminal; only `y` or `yes` is a yes. The answer is read
    /// on a thread of its own, so the runtime goes on polling Ctrl-C meanwhile: Ctrl-C at the
    /// question ends the run at once (exit 130), nothing changed.
    #[allow(clippy::unused_self)] // questions go through the printer, which owns stderr
    pub async fn ask(&self, question: &str) -> std::io::Result<bool> {
        eprint!("{question} [y/N] ");
        std::io::stderr().flush()?;
        let answer = tokio::task::spawn_blocking(|| {
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).map(|_| answer)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }

    /// A note on stderr, unless `--quiet`.
    pub fn note(&self, message: impl Display) {
        if !self.quiet {
            eprintln!("{}", for_stderr(&message.to_string()));
        }
    }
}

/// One JSON array on stdout, written an element at a time as it is known, laid out as
/// `serde_json`'s pretty printer lays out a whole array: nothing holds every element.
pub struct JsonArray<'p> {
    printer: &'p Printer,
    started: bool,
}

impl JsonArray<'_> {
    pub fn push<T: Serialize>(&mut self, element: &T) -> anyhow::Result<()> {
        let text = array_element(&serde_json::to_string_pretty(element)?, !self.started);
        self.started = true;
        self.write(text.as_bytes())
    }

    /// Closes the array (`[]` if nothing was pushed).
    pub fn finish(self) -> anyhow::Result<()> {
        let end: &[u8] = if self.started { b"\n]\n" } else { b"[]\n" };
        self.write(end)
    }

    fn write(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.printer.to_stdout(|| {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        })
    }
}

/// One element of a pretty JSON array, after the `[` (the first) or a `,`: its lines indented
/// two spaces. JSON strings hold no raw line breaks, so every line is the element's layout.
fn array_element(pretty: &str, first: bool) -> String {
    let mut out = String::with_capacity(pretty.len() + 64);
    out.push_str(if first { "[\n" } else { ",\n" });
    for (i, line) in pretty.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("  ");
        out.push_str(line);
    }
    out
}

/// A progress bar of done / total on stderr, on a terminal only and not with `--quiet`.
pub struct Counter {
    bar: Option<indicatif::ProgressBar>,
}

impl Counter {
    /// One more step to do.
    pub fn more(&self) {
        if let Some(bar) = &self.bar {
            bar.inc_length(1);
        }
    }

    pub fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// See [`Printer::progress_lines`].
pub struct ProgressLines {
    terminal: Option<indicatif::MultiProgress>,
    quiet: bool,
}

impl ProgressLines {
    /// One more line.
    pub fn line(&self) -> Progress {
        let style = match &self.terminal {
            _ if self.quiet => ProgressStyle::Silent,
            Some(lines) => {
                let bar = lines.add(indicatif::ProgressBar::new_spinner());
                bar.enable_steady_tick(Duration::from_millis(120));
                ProgressStyle::Terminal(bar)
            }
            None => ProgressStyle::Lines { last: None },
        };
        Progress { style }
    }
}

/// Progress of long work, on stderr. See [`Printer::progress`].
pub struct Progress {
    style: ProgressStyle,
}

enum ProgressStyle {
    Silent,
    Terminal(indicatif::ProgressBar),
    /// Off a terminal (CI logs): a line when the state changes, and one a minute otherwise.
    Lines {
        last: Option<(String, Instant)>,
    },
}

impl Progress {
    /// Shows `message`; `state` is what, when it changes, is worth a new line in a log.
    pub fn update(&mut self, state: &str, message: &str) {
        match &mut self.style {
            ProgressStyle::Silent => {}
            ProgressStyle::Terminal(bar) => bar.set_message(message.to_owned()),
            ProgressStyle::Lines { last } => {
                let due = last
                    .as_ref()
                    .is_none_or(|(seen, at)| seen != state || at.elapsed() >= Duration::from_mins(1));
                if due {
                    eprintln!("{message}");
                    *last = Some((state.to_owned(), Instant::now()));
                }
            }
        }
    }

    /// Removes the progress line from a terminal.
    pub fn finish(self) {
        if let ProgressStyle::Terminal(bar) = self.style {
            bar.finish_and_clear();
        }
    }
}

/// A table in GitHub-flavoured markdown; a table without a header (a summary) as a list of
/// `key: **value**` lines.
fn write_markdown_table(out: &mut impl Write, table: &Table) -> std::io::Result<()> {
    let cells =
        |row: &comfy_table::Row| -> Vec<String> { row.cell_iter().map(|c| markdown_text(&c.content())).collect() };
    let Some(header) = table.header() else {
        for row in table.row_iter() {
            match cells(row).as_slice() {
                [key, value] => writeln!(out, "- {key}: **{value}**")?,
                other => writeln!(out, "- {}", other.join(" · "))?,
            }
        }
        return Ok(());
    };
    let header = cells(header);
    writeln!(out, "| {} |", header.join(" | "))?;
    writeln!(out, "| {} |", vec!["---"; header.len()].join(" | "))?;
    for row in table.row_iter() {
        writeln!(out, "| {} |", cells(row).join(" | "))?;
    }
    Ok(())
}

/// Text safe in a markdown table cell: markup characters escaped, line breaks as `<br>`.
fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            '\n' => out.push_str("<br>"),
            '\\' | '`' | '*' | '_' | '|' | '<' | '>' | '[' | ']' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The error that ended the run, on stderr whatever `--quiet` says.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {}", for_stderr(&format!("{err:#}")));
}

/// Text from outside (an image's name, description or tags, another account's, an endpoint's
/// message) as a terminal may show it: control characters (escape sequences that would move
/// the cursor, retitle the window or hide text) written out as `\u{1b}`; line breaks stay.
pub fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() && c != '\n' {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A line for stderr: safe for a terminal, and without any URL's `user:password@`.
pub fn for_stderr(text: &str) -> String {
    for_terminal(&crate::types::scrub_userinfo(text)).into_owned()
}

fn use_color(choice: ColorChoice, stdout_is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// `2024-05-01 12:00` and how long ago, e.g. `2024-05-01 12:00 (3d ago)`.
pub fn date_and_age(when: Timestamp, now: Timestamp) -> String {
    format!("{} ({} ago)", when.strftime("%Y-%m-%d %H:%M"), age(when, now))
}

/// A rough age in the largest unit that fits: `45m`, `5h`, `12d`, `7mo`, `3y`.
pub fn age(when: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(when).as_secs().max(0);
    let (minutes, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    match () {
        () if hours < 1 => format!("{minutes}m"),
        () if days < 1 => format!("{hours}h"),
        () if days < 60 => format!("{days}d"),
        () if days < 730 => format!("{}mo", days / 30),
        () => format!("{}y", days / 365),
    }
}

/// Whole seconds, in humantime's words: `1m 5s`.
pub fn elapsed(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// `yes`/`no`/`-` for an optional flag.
pub fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_array_reads_as_the_whole_array_would() {
        let rows = vec![
            serde_json::json!({"image_id": "ami-1", "tags": {"a": "b"}, "list": [1, 2]}),
            serde_json::json!({"image_id": "ami-2", "note": "two\nlines"}),
        ];
        let mut streamed = String::new();
        for (i, row) in rows.iter().enumerate() {
            streamed.push_str(&array_element(&serde_json::to_string_pretty(row).unwrap(), i == 0));
        }
        streamed.push_str("\n]");
        assert_eq!(streamed, serde_json::to_string_pretty(&rows).unwrap());
    }

    #[test]
    fn a_long_table_written_in_parts_reads_as_the_whole_table() {
        for color in [ColorChoice::Never, ColorChoice::Always] {
            let printer = Printer::new(OutputFormat::Table, color, false, Timestamp::UNIX_EPOCH);
            long_table_written_in_parts(&printer);
        }
    }

    fn long_table_written_in_parts(printer: &Printer) {
        // The widest cells in the last part, a cell of two lines in the first, an empty one.
        let count = ROWS_AT_ONCE * 2 + 7;
        let rows = move || -> Rows<'static> {
            Box::new((0..count).map(move |i| {
                let name = match i {
                    3 => "two\nlines".to_owned(),
                    5 => String::new(),
                    i if i == count - 1 => "a name wider than any other".to_owned(),
                    i => format!("web-{i}"),
                };
                let size = printer_cell(i);
                vec![Cell::new(format!("ami-{i:08}")), Cell::new(name), size]
            }))
        };
        let head = printer.table(&["IMAGE ID", "NAME", "GiB"]);
        let whole = Shown::Long(LongTable {
            head: head.clone(),
            rows: Box::new(rows),
        })
        .into_table();
        let expected: String = whole.lines().flat_map(|line| [line, "\n".to_owned()]).collect();

        for shown in [
            Shown::Table(whole.clone()),
            Shown::Long(LongTable {
                head,
                rows: Box::new(rows),
            }),
        ] {
            let mut written = Vec::new();
            printer.write_shown(&mut written, shown).unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), expected);
        }
    }

    /// A size, coloured in every other row.
    fn printer_cell(i: usize) -> Cell {
        let cell = Cell::new(i % 1000);
        if i.is_multiple_of(2) {
            cell.fg(Color::Yellow)
        } else {
            cell
        }
    }

    #[test]
    fn ages_use_the_largest_unit_that_fits() {
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let ago = |s: &str| age(s.parse().unwrap(), now);
        assert_eq!(ago("2026-05-31T23:15:00Z"), "45m");
        assert_eq!(ago("2026-05-31T19:00:00Z"), "5h");
        assert_eq!(ago("2026-05-20T00:00:00Z"), "12d");
        assert_eq!(ago("2025-11-01T00:00:00Z"), "7mo");
        assert_eq!(ago("2023-01-01T00:00:00Z"), "3y");
        assert_eq!(
            ago("2026-06-02T00:00:00Z"),
            "0m",
            "a clock skewed into the future is not negative"
        );
    }

    #[test]
    fn colour_follows_the_flag_then_the_terminal() {
        assert!(use_color(ColorChoice::Always, false));
        assert!(!use_color(ColorChoice::Never, true));
        assert!(!use_color(ColorChoice::Auto, false));
    }
}
