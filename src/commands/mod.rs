//! One file per verb. Each takes its settings and a [`Context`], asks the service layer for
//! what it needs, and hands a result to the printer.
//!
//! The settings are defined here ([`Run`]) and in each command's module; `crate::settings`
//! fills them from the command line. Nothing here or below knows of clap.

pub mod accounts;
mod across;
pub mod cleanup;
pub mod contexts;
pub mod copy;
pub mod create;
pub mod deregister;
pub mod describe;
mod local;
pub mod permissions;
mod plan_view;
pub mod publish;
pub mod stages;
pub mod usage;

use futures::StreamExt;
use jiff::Timestamp;

use crate::ec2::{self, ConnectOptions, Ec2, Look, Session, ThisInstance};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::model::ImageState;
use crate::output::{Counter, Printer, elapsed};
use crate::pipeline::plan::Plan;
use crate::pipeline::{Carry, Progress};
use crate::types::{ImageId, Region, RoleArn};
use contexts::Contexts;
use plan_view::PlanView;

/// A run's settings: how to connect, what to do, and what resolving them had to say.
pub struct Settings {
    pub global: Global,
    pub command: Run,
    /// Warnings about the command line (e.g. a role named twice), said before anything runs.
    pub warnings: Vec<String>,
}

/// How to connect (the region and role come per context), and what to allow of endpoints.
pub struct Global {
    pub connect: ConnectOptions,
    /// `--allow-http-sts`: an STS endpoint on plain http to another machine.
    pub allow_http_sts: bool,
    /// How usage reports are reused and waited for (`--include-shared=unused`).
    pub reports: crate::ec2::ReportWait,
}

/// The command, with its settings.
pub enum Run {
    /// Talk to nobody: shell completions, the man page (both from the command line's
    /// definition), a policy file's check.
    Completions {
        shell: clap_complete::Shell,
        definition: Box<clap::Command>,
    },
    Man {
        definition: Box<clap::Command>,
    },
    CheckPolicy(std::path::PathBuf),
    Create(Box<create::Settings>),
    Copy(Box<copy::Request>),
    Describe(Box<describe::Settings>),
    Permissions(permissions::Request),
    Publish(publish::Settings),
    Usage(Box<usage::Settings>),
    /// `deregister` and `disable`: exactly the named images.
    Remove(deregister::Settings),
    Cleanup(Box<cleanup::Settings>),
    /// `deprecate`, `enable`, `protect`, `unprotect`.
    Stage {
        image_ids: Vec<ImageId>,
        change: stages::StageChange,
    },
    Restore(Vec<ImageId>),
}

/// What a command runs with: an EC2 client (one region of one account), and the run's one
/// printer and one Ctrl-C, which every context of a run shares.
pub struct Context<'run> {
    pub ec2: Ec2,
    pub printer: &'run Printer,
    pub interrupt: &'run Interrupt,
    /// The run's clock: what is old, due or expired is decided as of this moment.
    pub now: Timestamp,
    /// How usage reports are reused and waited for (`--include-shared=unused`).
    pub reports: crate::ec2::ReportWait,
}

#[cfg(test)]
impl Context<'static> {
    /// A context around a mocked client, with a quiet JSON printer and a Ctrl-C that never comes.
    pub fn for_tests(ec2: Ec2) -> Context<'static> {
        use crate::output::{ColorChoice, OutputFormat};
        Context {
            ec2,
            printer: Box::leak(Box::new(Printer::new(
                OutputFormat::Json,
                ColorChoice::Never,
                true,
                Timestamp::now(),
            ))),
            interrupt: Box::leak(Box::new(Interrupt::never())),
            now: Timestamp::now(),
            reports: crate::ec2::ReportWait::default(),
        }
    }
}

/// Waiting for new images to be available (`--wait`, `--wait-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// The user asked to wait.
    pub wait: bool,
    /// For how long at most (also when amictl waits of its own accord, e.g. before copying).
    pub timeout: std::time::Duration,
}

impl Default for Waiting {
    fn default() -> Waiting {
        Waiting {
            wait: false,
            timeout: std::time::Duration::from_hours(1),
        }
    }
}

/// Where to work: regions and accounts. Each region once, each account once.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub regions: Vec<Region>,
    pub all_regions: bool,
    pub roles: Vec<RoleArn>,
    /// `--org`, `--accounts`, `--accounts-file`: accounts listed when the run starts.
    pub accounts: Option<accounts::AccountsAsked>,
}

impl Scope {
    /// Whether the run asks for more than the one region of one account.
    pub fn asks_several(&self) -> bool {
        self.all_regions || !self.regions.is_empty() || !self.roles.is_empty() || self.accounts.is_some()
    }
}

/// Runs the command the user asked for, with the run's printer and Ctrl-C.
pub async fn run(
    settings: Settings,
    now: Timestamp,
    printer: &'static Printer,
    interrupt: &'static Interrupt,
) -> anyhow::Result<()> {
    let Settings {
        global,
        command,
        warnings,
    } = settings;
    for warning in warnings {
        printer.warn(warning);
    }
    if !matches!(command, Run::Completions { .. } | Run::Man { .. } | Run::CheckPolicy(_)) {
        check_endpoints(&global, printer)?;
    }
    // The process's, like the printer: work on tasks of its own reads it.
    let global: &'static Global = Box::leak(Box::new(global));
    let connect = Connect {
        global,
        printer,
        interrupt,
        now,
    };
    match command {
        // These talk to nobody: no region, no credentials.
        Run::Completions { shell, definition } => local::completions(printer, shell, *definition),
        Run::Man { definition } => local::man(printer, *definition),
        Run::CheckPolicy(file) => local::check_policy(printer, &file),
        Run::Cleanup(settings) => Box::pin(connect.cleanup(*settings)).await,
        Run::Create(settings) => {
            // Without --instance-id, amictl images the machine it runs on: the metadata
            // service says which, and in which region, before anything else is asked.
            let this_instance = match &settings.instance_id {
                Some(_) => None,
                None => Some(ec2::this_instance().await?),
            };
            let reach = connect.reach(this_instance.as_ref()).await?;
            let target = create::Target::new(&settings, this_instance.as_ref())
                .ok_or_else(|| Error::Usage("create needs --instance-id".to_owned()))?;
            create::run(&reach, &settings, target).await
        }
        Run::Copy(request) => copy::run(&connect.reach(None).await?, &request).await,
        Run::Remove(settings) => deregister::run(&connect.one(None).await?, &settings).await,
        Run::Describe(settings) => {
            let contexts = connect.contexts(&settings.scope).await?;
            let unreached = contexts.unreached();
            let result = describe::run(contexts, *settings).await;
            with_unreached(result, &unreached.list(), printer)
        }
        Run::Permissions(request) => permissions::run(&connect.one(None).await?, request).await,
        Run::Publish(settings) => publish::run(&connect.reach(None).await?, &settings).await,
        Run::Usage(settings) => {
            let home = connect.one(None).await?;
            let (members, unreached) = if settings.scope.asks_several() {
                connect.contexts(&settings.scope).await?.all().await?
            } else {
                (Vec::new(), Vec::new())
            };
            usage::run(&home, &members, &unreached, &settings).await
        }
        Run::Stage { image_ids, change } => stages::run(&connect.one(None).await?, &image_ids, change).await,
        Run::Restore(image_ids) => stages::restore(&connect.one(None).await?, &image_ids).await,
    }
}

/// What a command does with an image needs it available (EC2 copies, and templates launch,
/// available images only): else the run fails saying what it is, and to wait for a pending one.
fn require_available(image: &crate::model::Image, only: &str, verb: &str) -> Result<(), Error> {
    let state = image.state.as_ref();
    if state.is_some_and(ImageState::is_launchable) {
        return Ok(());
    }
    let wait = if state.is_some_and(ImageState::is_transient) {
        format!(": wait for it (`amictl describe` shows its state), then {verb}")
    } else {
        String::new()
    };
    Err(Error::Failed(format!(
        "image {} is {}; {only}{wait}",
        image.image_id,
        state.map_or("in an unknown state", ImageState::as_str)
    )))
}

/// A look during a wait, as progress shows it: the state (a log line when it changes) and
/// the message.
fn waiting_text<'a>(id: &ImageId, look: Look<'a>, since: std::time::Duration) -> (&'a str, String) {
    match look {
        Look::Seen(state) => {
            let state = state.map_or("unknown", ImageState::as_str);
            (state, format!("waiting for {id}: {state}, {}", elapsed(since)))
        }
        Look::NotVisibleYet => (
            "not visible yet",
            format!("waiting for {id} to show up, {}", elapsed(since)),
        ),
    }
}

/// Carries a plan out with a progress bar (Ctrl-C stops cleanly), shows the report, and ends
/// as the run did: interrupted (130), with failures (1), or done.
async fn carry_out_and_report(
    clients: &[&Ec2],
    ctx: &Context<'_>,
    plan: &mut Plan,
    carry: Carry,
    (what, show_kept): (&str, bool),
) -> anyhow::Result<()> {
    let shown = ShownProgress {
        counter: ctx.printer.counter(plan.steps(), what),
        printer: ctx.printer,
    };
    let ended = crate::pipeline::carry_out(clients, ctx.interrupt, plan, carry, &shown).await;
    shown.counter.finish();
    ctx.printer
        .print(&PlanView { plan, show_kept })
        .map_err(|e| Error::Failed(format!("cannot print the report: {e}")))?;
    Ok(ended.into_result()?)
}

/// The executor's progress on stderr: a bar on a terminal, a note when Ctrl-C is heard.
struct ShownProgress<'run> {
    counter: Counter,
    printer: &'run Printer,
}

impl Progress for ShownProgress<'_> {
    fn step_done(&self) {
        self.counter.inc();
    }

    fn stopping(&self) {
        self.printer
            .note("interrupted: starting nothing new, letting the requests in flight end (Ctrl-C again quits at once)");
    }
}

/// One account, reached in its own region (`--region`) and in any other on demand: for
/// commands that work from one region into others (`copy`).
pub struct Reach<'run> {
    session: Session,
    printer: &'run Printer,
    interrupt: &'run Interrupt,
    now: Timestamp,
    reports: crate::ec2::ReportWait,
}

impl<'run> Reach<'run> {
    /// A context in the account's own region.
    pub fn home(&self) -> Context<'run> {
        self.context(None)
    }

    /// A context in another region of the same account (same credentials).
    pub fn region(&self, region: &Region) -> Context<'run> {
        self.context(Some(region.clone()))
    }

    fn context(&self, region: Option<Region>) -> Context<'run> {
        Context {
            ec2: self.session.client(region),
            printer: self.printer,
            interrupt: self.interrupt,
            now: self.now,
            reports: self.reports,
        }
    }
}

/// Once per run, before any request: an STS endpoint on plain http to another machine is
/// refused (its answers are credentials) unless `--allow-http-sts`; any other endpoint that
/// is plain http on another machine is warned about (requests cross the network unencrypted).
fn check_endpoints(global: &Global, printer: &Printer) -> Result<(), Error> {
    if let Some(sts) = ec2::plain_http_sts_endpoint()
        && !global.allow_http_sts
    {
        return Err(Error::Usage(format!(
            "the STS endpoint {sts} is plain http on another machine, and STS answers with credentials: use https, or pass --allow-http-sts (AMICTL_ALLOW_HTTP_STS=1) if that network is yours, e.g. a test server in CI"
        )));
    }
    for endpoint in ec2::plain_http_endpoints(global.connect.endpoint_url.as_ref()) {
        printer.warn(format!(
            "the endpoint {endpoint} is plain http on another machine: requests cross the network unencrypted; use https"
        ));
    }
    Ok(())
}

/// Makes the contexts of a run from the global options.
struct Connect<'run> {
    global: &'run Global,
    printer: &'run Printer,
    interrupt: &'run Interrupt,
    now: Timestamp,
}

impl<'run> Connect<'run> {
    /// How to connect, as the global options say (the region and role come per context).
    fn options(&self, fallback_region: Option<Region>) -> ConnectOptions {
        ConnectOptions {
            fallback_region,
            ..self.global.connect.clone()
        }
    }

    /// One context, in the region the options (or the instance) name.
    async fn one(&self, this_instance: Option<&ThisInstance>) -> Result<Context<'run>, Error> {
        Ok(self.reach(this_instance).await?.home())
    }

    /// The account of the options, in its own region and any other.
    async fn reach(&self, this_instance: Option<&ThisInstance>) -> Result<Reach<'run>, Error> {
        let options = self.options(this_instance.map(|this| this.region.clone()));
        Ok(Reach {
            session: Session::start(&options).await?,
            printer: self.printer,
            interrupt: self.interrupt,
            now: self.now,
            reports: self.global.reports,
        })
    }

    /// One context per account (`--role-arn`, else the caller's; `--org`, `--accounts` through
    /// their role) and region (`--regions`, or the enabled ones with `--all-regions`, else the
    /// one region of the options), as they are reached: see [`Contexts`].
    async fn contexts(&self, scope: &Scope) -> Result<Contexts<'run>, Error> {
        // The caller's own session: it lists the organization, and every account's session
        // is derived from it.
        let home = Session::start(&self.options(None)).await?;
        let targets = match &scope.accounts {
            Some(asked) => asked.targets(home.clone()).boxed(),
            None if scope.roles.is_empty() => {
                futures::stream::iter([Ok(accounts::Target { role: None, name: None })]).boxed()
            }
            None => futures::stream::iter(scope.roles.clone().into_iter().map(|role| {
                Ok(accounts::Target {
                    role: Some(role),
                    name: None,
                })
            }))
            .boxed(),
        };
        let regions = if scope.all_regions {
            None
        } else if scope.regions.is_empty() {
            Some(vec![None])
        } else {
            Some(scope.regions.iter().cloned().map(Some).collect())
        };
        Ok(Contexts::new(contexts::Where {
            home,
            targets,
            regions,
            printer: self.printer,
            interrupt: self.interrupt,
            now: self.now,
            reports: self.global.reports,
        }))
    }
}

/// The commands whose accounts × regions work on tasks of their own: the run's printer and
/// Ctrl-C are the process's.
impl Connect<'static> {
    /// `cleanup`: a saved plan names its regions, and so does a policy file (the one region
    /// for a policy that names none); else --regions / --all-regions / the one region. Files
    /// are read and checked before anything is asked of AWS.
    async fn cleanup(&self, settings: cleanup::Settings) -> anyhow::Result<()> {
        let cleanup::Settings {
            plan_from,
            scope: asked,
            finish,
        } = settings;
        let (scope, source) = match plan_from {
            cleanup::PlanFrom::Saved(plan) => {
                if asked.accounts.is_none() {
                    cleanup::check_roles_cover(&plan, &asked.roles)?;
                }
                let scope = Scope {
                    regions: cleanup::plan_regions(&plan),
                    all_regions: false,
                    ..asked
                };
                (scope, cleanup::Source::Saved(plan))
            }
            cleanup::PlanFrom::File(file) => {
                let home = ec2::resolve_region(&self.options(None)).await?;
                let scope = Scope {
                    regions: file.regions(&home),
                    all_regions: false,
                    ..asked
                };
                (scope, cleanup::Source::File { file, home })
            }
            cleanup::PlanFrom::Flags(rules) => (asked, cleanup::Source::Flags(rules)),
        };
        let contexts = self.contexts(&scope).await?;
        let unreached = contexts.unreached();
        let result = cleanup::run(contexts, &finish, source).await;
        with_unreached(result, &unreached.list(), self.printer)
    }
}

/// Runs `work` on a task of its own, on any core of the runtime (a panic there is a panic
/// here): each account × region of an organization's run, so that signing requests and
/// parsing answers spread over every core.
async fn on_its_own_task<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(work)
        .await
        .unwrap_or_else(|task| std::panic::resume_unwind(task.into_panic()))
}

/// A run's outcome, with the accounts it could not reach: those fail it (exit 1), named, after
/// the others' output; a failure of the run's own is said first.
fn with_unreached(result: anyhow::Result<()>, unreached: &[String], printer: &Printer) -> anyhow::Result<()> {
    if unreached.is_empty() {
        return result;
    }
    let unreached = unreached.join("; ");
    match result {
        Ok(()) => Err(Error::Failed(unreached).into()),
        Err(err) => {
            printer.warn(format!("also left out: {unreached}"));
            Err(err)
        }
    }
}
