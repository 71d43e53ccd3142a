//! Where the command line ends. clap's structs (`cli`) become here the settings each command
//! runs with: plain values, checked as far as they can be without a request, with nothing of
//! clap left. The commands and every layer under them take these; only lib.rs, `cli` and
//! this module know of clap.
//!
//! A flag's way in, in two steps: `cli.rs` (its name, help and conflicts), then the function
//! here for its command (what it becomes).

use std::collections::BTreeSet;

use clap::CommandFactory;
use jiff::{SignedDuration, Timestamp};

use crate::cli::{
    CleanupArgs, Cli, Command, CopyArgs, CreateArgs, DescribeArgs, ExecutionArgs, GlobalArgs, PermissionsChange,
    PermissionsCommand, PolicyCommand, PublishToArgs, RemovalArgs, ScopeArgs, UsageArgs, WaitArgs,
};
use crate::commands::accounts::AccountsAsked;
use crate::commands::stages::StageChange;
use crate::commands::{
    Global, Run, Scope, Settings, Waiting, cleanup, copy, create, deregister, describe, permissions, publish, usage,
};
use crate::ec2::ReportWait;
use crate::ec2::{ConnectOptions, Grants, ImageQuery};
use crate::error::Error;
use crate::pipeline::Carry;
use crate::pipeline::plan::{Consumers, Policy, Removal, Rules, RulesError, Shared};
use crate::pipeline::selection::Selection;
use crate::policy_file::PolicyFile;
use crate::types::{HumanDuration, ImageId, IncludeShared, Owner, Placeholder, Tag};

/// The settings of the command line, as of `now` (for times given as "in 90 days").
pub fn resolve(cli: Cli, now: Timestamp) -> Result<Settings, Error> {
    let Cli { global, command } = cli;
    let mut warnings = Vec::new();
    let reports = reports_of(&command);
    let in_flight = in_flight_of(&command);
    let command = match command {
        Command::Completions { shell } => Run::Completions {
            shell,
            definition: Box::new(Cli::command()),
        },
        Command::Man => Run::Man {
            definition: Box::new(Cli::command()),
        },
        Command::Policy(PolicyCommand::Check { file }) => Run::CheckPolicy(file),
        Command::Create(args) => Run::Create(Box::new(create_settings(args)?)),
        Command::Copy(args) => Run::Copy(Box::new(copy_request(args)?)),
        Command::Describe(args) => Run::Describe(Box::new(describe_settings(args, &mut warnings)?)),
        Command::Permissions(command) => Run::Permissions(permissions_request(command)?),
        Command::Publish(args) => Run::Publish(publish::Settings {
            image: args.image_id,
            regions: crate::types::each_once(args.regions),
            request: publish_request(args.to, args.dry_run),
        }),
        Command::Deregister(args) => Run::Remove(deregister::Settings {
            image_ids: args.images.image_ids,
            policy: Policy {
                removal: Removal::Deregister {
                    delete_snapshots: args.delete_snapshots,
                },
                ..removal_policy(&args.removal)
            },
            dry_run: args.removal.dry_run,
            carry: carry(&args.execution),
        }),
        Command::Disable(args) => Run::Remove(deregister::Settings {
            image_ids: args.images.image_ids,
            policy: Policy {
                removal: Removal::Disable,
                ..removal_policy(&args.removal)
            },
            dry_run: args.removal.dry_run,
            carry: carry(&args.execution),
        }),
        Command::Usage(args) => Run::Usage(Box::new(usage_settings(*args, &mut warnings)?)),
        Command::Cleanup(args) => Run::Cleanup(Box::new(cleanup_settings(*args, &mut warnings)?)),
        Command::Deprecate(args) => Run::Stage {
            image_ids: args.images.image_ids,
            change: StageChange::Deprecate(match (args.at, args.within) {
                (Some(at), _) => Some(at.0),
                (None, Some(within)) => Some(within.from(now)),
                (None, None) => None,
            }),
        },
        Command::Enable(args) => Run::Stage {
            image_ids: args.images.image_ids,
            change: StageChange::Enable {
                restore_permissions: args.restore_permissions,
                yes: args.yes,
            },
        },
        Command::Protect(args) => Run::Stage {
            image_ids: args.images.image_ids,
            change: StageChange::Protect {
                cooldown: args.cooldown,
            },
        },
        Command::Unprotect(images) => Run::Stage {
            image_ids: images.image_ids,
            change: StageChange::Unprotect,
        },
        Command::Restore(images) => Run::Restore(images.image_ids),
    };
    let mut global = global_settings(&global);
    global.connect.in_flight = in_flight;
    Ok(Settings {
        global: Global { reports, ..global },
        command,
        warnings,
    })
}

fn global_settings(global: &GlobalArgs) -> Global {
    Global {
        connect: ConnectOptions {
            region: global.region.clone(),
            profile: global.profile.clone(),
            endpoint_url: global.endpoint_url.clone(),
            max_attempts: global.max_attempts,
            timeout: global.timeout.map(|t| t.0),
            max_rate: global.max_rate.map(|r| r.0),
            ..ConnectOptions::default()
        },
        allow_http_sts: global.allow_http_sts,
        reports: ReportWait::default(),
    }
}

/// Where to work: a region named twice is worked once, and of two roles in one account only
/// the first is used (the same images would be planned twice). The accounts file is read here.
fn scope(args: ScopeArgs, warnings: &mut Vec<String>) -> Result<Scope, Error> {
    let mut accounts = BTreeSet::new();
    let mut roles = Vec::new();
    for role in &args.role_arns {
        if accounts.insert(role.account_id().as_str().to_owned()) {
            roles.push(role.clone());
        } else {
            warnings.push(format!(
                "{} is in account {}, which an earlier --role-arn already covers; using that one",
                role.as_str(),
                role.account_id()
            ));
        }
    }
    let asked = match args.role_name {
        None => None,
        Some(role_name) => {
            let mut listed = args.accounts;
            if let Some(file) = &args.accounts_file {
                listed.extend(crate::commands::accounts::read_accounts_file(file)?);
            }
            Some(AccountsAsked {
                org: args.org,
                listed,
                exclude: args.exclude_accounts,
                include_self: args.include_self,
                shard: args.shard,
                role_name,
            })
        }
    };
    Ok(Scope {
        regions: crate::types::each_once(args.regions),
        all_regions: args.all_regions,
        roles,
        accounts: asked,
    })
}

fn waiting(args: &WaitArgs) -> Waiting {
    Waiting {
        wait: args.wait,
        timeout: args.wait_timeout.0,
    }
}

fn carry(args: &ExecutionArgs) -> Carry {
    let asked = args.concurrency.map(usize::from);
    Carry {
        reads: asked.unwrap_or(Carry::READS),
        concurrency: asked.unwrap_or(Carry::REMOVALS),
        snapshot_price: args.snapshot_price.0,
    }
}

/// The safety rules every removal command shares.
fn removal_policy(args: &RemovalArgs) -> Policy {
    Policy {
        in_use: Consumers::ignored_if(args.allow_in_use),
        shared: shared(args.include_shared),
        ..Policy::default()
    }
}

fn shared(include: Option<IncludeShared>) -> Shared {
    match include {
        None => Shared::Keep,
        Some(IncludeShared::All) => Shared::Ignore,
        Some(IncludeShared::Unused) => Shared::IfUnused,
    }
}

fn usage_settings(args: UsageArgs, warnings: &mut Vec<String>) -> Result<usage::Settings, Error> {
    if !args.scope.regions.is_empty() || args.scope.all_regions {
        return Err(Error::Usage(
            "usage works in --region, where the images are: --regions and --all-regions don't apply".to_owned(),
        ));
    }
    Ok(usage::Settings {
        image_ids: crate::types::each_once(args.images.image_ids),
        reports: !args.no_report,
        scope: scope(args.scope, warnings)?,
    })
}

/// How the command reuses and waits for usage reports, if it reads them.
fn reports_of(command: &Command) -> ReportWait {
    match command {
        Command::Deregister(args) => report_wait(&args.removal.max_report_age, &args.removal.report_timeout),
        Command::Disable(args) => report_wait(&args.removal.max_report_age, &args.removal.report_timeout),
        Command::Cleanup(args) => report_wait(&args.removal.max_report_age, &args.removal.report_timeout),
        Command::Usage(args) => report_wait(&args.max_report_age, &args.report_timeout),
        _ => ReportWait::default(),
    }
}

/// The run's requests in flight at most: `--concurrency`, where the command takes it (each
/// account × region at work has at least one request in flight; more would only queue).
fn in_flight_of(command: &Command) -> Option<usize> {
    match command {
        Command::Describe(args) => Some(usize::from(args.concurrency)),
        Command::Cleanup(args) => args.execution.concurrency.map(usize::from),
        _ => None,
    }
}

/// How usage reports are reused and waited for (`--max-report-age`, `--report-timeout`).
fn report_wait(max_age: &HumanDuration, timeout: &HumanDuration) -> ReportWait {
    ReportWait {
        max_age: jiff::SignedDuration::try_from(max_age.0).unwrap_or(jiff::SignedDuration::MAX),
        within: timeout.0,
        ..ReportWait::default()
    }
}

/// What to publish to, each named once.
fn publish_request(args: PublishToArgs, dry_run: bool) -> publish::Request {
    publish::Request {
        templates: crate::types::each_once(args.launch_templates),
        parameters: crate::types::each_once(args.ssm_parameters),
        label: args.label,
        set_default: !args.no_default,
        dry_run,
        settle: crate::ec2::SettleWait::default(),
    }
}

fn create_settings(args: CreateArgs) -> Result<create::Settings, Error> {
    Tag::check_writable(args.tagging.tags.iter().chain(&args.tagging.snapshot_tags)).map_err(Error::Usage)?;
    if let Some(p) = args.name.as_ref().and_then(|name| {
        name.refused_placeholder(|p| !matches!(p, Placeholder::SourceName | Placeholder::SourceRegion))
    }) {
        return Err(Error::Usage(format!(
            "{} is for `amictl copy`; create's name can use {{date}}, {{timestamp}}, {{instance_id}} and {{instance_name}}",
            p.written()
        )));
    }
    Ok(create::Settings {
        instance_id: args.instance_id,
        name: args.name,
        description: args.description.map(|d| d.as_str().to_owned()),
        reboot: match (args.reboot.no_reboot, args.reboot.yes) {
            (true, _) => create::Reboot::No,
            (false, true) => create::Reboot::YesEvenThisMachine,
            (false, false) => create::Reboot::Yes,
        },
        tags: args.tagging.tags,
        snapshot_tags: args.tagging.snapshot_tags,
        copy_instance_tags: args.copy_instance_tags,
        copy_to_regions: args.copy_to_regions,
        deprecate_in: args.deprecate_in,
        waiting: waiting(&args.waiting),
        publish: publish_request(args.publish, args.dry_run),
        dry_run: args.dry_run,
    })
}

fn copy_request(args: CopyArgs) -> Result<copy::Request, Error> {
    let (tagging, waiting_args) = (&args.tagging, &args.waiting);
    Tag::check_writable(tagging.tags.iter().chain(&tagging.snapshot_tags)).map_err(Error::Usage)?;
    if let Some(p) = args
        .name
        .as_ref()
        .and_then(|name| name.refused_placeholder(|p| p != Placeholder::InstanceName))
    {
        return Err(Error::Usage(format!(
            "{} is create's; a copy's name can use {{source_name}}, {{source_region}}, {{instance_id}}, {{date}} and {{timestamp}}",
            p.written()
        )));
    }
    let targets = if args.all_regions {
        copy::Targets::All
    } else {
        let regions = crate::types::each_once(args.to_regions);
        if let Some(why) = copy::plan::kms_refusal(&args.encryption.kms_key_ids, &regions) {
            return Err(Error::Usage(why));
        }
        copy::Targets::Regions(regions)
    };
    Ok(copy::Request {
        source: args.image_id,
        targets,
        name: args.name,
        description: args.description.map(|d| d.as_str().to_owned()),
        copy_tags: args.copy_tags,
        tags: Tag::map(&args.tagging.tags),
        snapshot_tags: Tag::map(&args.tagging.snapshot_tags),
        copy_permissions: match (args.permissions.copy_permissions, args.permissions.yes) {
            (false, _) => copy::CopyPermissions::No,
            (true, false) => copy::CopyPermissions::Yes,
            (true, true) => copy::CopyPermissions::EvenPublic,
        },
        encrypt: args.encryption.encrypt,
        kms_keys: args.encryption.kms_key_ids,
        deprecation: match (args.deprecation.deprecate_in, args.deprecation.no_deprecation) {
            (Some(lead), _) => copy::Deprecation::In(lead.0),
            (None, true) => copy::Deprecation::Unset,
            (None, false) => copy::Deprecation::AsTheSource,
        },
        waiting: waiting(waiting_args),
        publish: publish_request(args.publish, args.dry_run),
        dry_run: args.dry_run,
    })
}

fn describe_settings(args: DescribeArgs, warnings: &mut Vec<String>) -> Result<describe::Settings, Error> {
    let query = ImageQuery {
        // The account's own images unless the user named images or owners.
        owners: if args.owners.is_empty() && args.image_ids.is_empty() {
            vec![Owner::Me]
        } else {
            args.owners
        },
        image_ids: args.image_ids,
        name: args.name,
        exact_name: None,
        tags: args.tags,
        backing: args.backing,
        include_deprecated: args.include_deprecated,
        include_disabled: args.include_disabled,
    };
    Ok(describe::Settings {
        query,
        recycle_bin: args.recycle_bin,
        snapshot_price: args.snapshot_price,
        concurrency: usize::from(args.concurrency),
        scope: scope(args.regions, warnings)?,
    })
}

fn permissions_request(command: PermissionsCommand) -> Result<permissions::Request, Error> {
    use permissions::{Action, Request};
    let simple = |image_ids: Vec<ImageId>, action, snapshots, dry_run| Request {
        action,
        image_ids,
        snapshots,
        dry_run,
    };
    Ok(match command {
        PermissionsCommand::Show(images) => simple(images.image_ids, Action::Show, false, false),
        PermissionsCommand::Add(change) => granting(change, "add", Action::Add)?,
        PermissionsCommand::Remove(change) => granting(change, "remove", Action::Remove)?,
        PermissionsCommand::Public(public) => {
            if !public.yes && !public.change.dry_run {
                return Err(Error::Usage(
                    "making images public lets every AWS account launch them; pass --yes if that is what you want"
                        .to_owned(),
                ));
            }
            simple(
                public.change.images.image_ids,
                Action::Public,
                false,
                public.change.dry_run,
            )
        }
        PermissionsCommand::Private(change) => simple(change.images.image_ids, Action::Private, false, change.dry_run),
        PermissionsCommand::Reset(reset) => simple(
            reset.change.images.image_ids,
            Action::Reset,
            reset.snapshots,
            reset.change.dry_run,
        ),
    })
}

/// `permissions add` and `remove`: the grants named, on the images named.
fn granting(
    change: PermissionsChange,
    verb: &str,
    action: fn(Grants) -> permissions::Action,
) -> Result<permissions::Request, Error> {
    Ok(permissions::Request {
        action: action(grants(&change, verb)?),
        image_ids: change.images.image_ids,
        snapshots: change.snapshots,
        dry_run: change.dry_run,
    })
}

fn grants(change: &PermissionsChange, verb: &str) -> Result<Grants, Error> {
    let grants = Grants {
        public: false,
        accounts: change.accounts.iter().map(|a| a.as_str().to_owned()).collect(),
        organization_arns: change.orgs.iter().map(|a| a.as_str().to_owned()).collect(),
        organizational_unit_arns: change.ous.iter().map(|a| a.as_str().to_owned()).collect(),
    };
    if grants.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to {verb}: name at least one --account, --org or --ou"
        )));
    }
    Ok(grants)
}

/// `cleanup`: what it plans from (a saved plan, a policy file, or the flags, each read and
/// checked here), where, and how it carries the plan out.
fn cleanup_settings(args: CleanupArgs, warnings: &mut Vec<String>) -> Result<cleanup::Settings, Error> {
    let plan_from = if let Some(path) = &args.apply_plan {
        cleanup::PlanFrom::Saved(cleanup::load_plan(path)?)
    } else if let Some(path) = &args.policy {
        cleanup::PlanFrom::File(PolicyFile::load(path)?)
    } else {
        cleanup::PlanFrom::Flags(cleanup_rules(&args)?)
    };
    Ok(cleanup::Settings {
        plan_from,
        finish: cleanup::Finish {
            show_kept: args.show_kept,
            yes: args.yes,
            dry_run: args.removal.dry_run,
            save_plan: args.save_plan,
            carry: carry(&args.execution),
        },
        scope: scope(args.regions, warnings)?,
    })
}

/// The one policy of the cleanup flags, built as a policy file's are.
fn cleanup_rules(args: &CleanupArgs) -> Result<Rules, Error> {
    let duration = |flag: &str, value: Option<std::time::Duration>| {
        value
            .map(SignedDuration::try_from)
            .transpose()
            .map_err(|_| Error::Usage(format!("{flag} is too long")))
    };
    let selection = Selection {
        image_ids: args.selectors.image_ids.clone(),
        name: args.selectors.name.clone(),
        tags: args.selectors.tags.clone(),
        exclude_tags: args.exclude_tags.clone(),
        older_than: duration("--older-than", args.selectors.older_than.map(|d| d.0))?,
        all: args.selectors.all,
        deprecated: args.selectors.deprecated,
        disabled_for: duration("--disabled-for", args.selectors.disabled_for.map(|d| d.0))?,
        unused_for: duration("--unused-for", args.selectors.unused_for.map(|d| d.0))?,
    };
    let policy = Policy {
        keep: args.keep,
        group_by: args.group_by.clone(),
        removal: if args.disable {
            Removal::Disable
        } else {
            Removal::Deregister { delete_snapshots: true }
        },
        orphans: if args.orphans.orphans {
            duration("--orphans-older-than", Some(args.orphans.orphans_older_than.0))?
        } else {
            None
        },
        ..removal_policy(&args.removal)
    };
    Rules::build(None, selection, policy).map_err(|err| match err {
        RulesError::SelectsNothing => Error::Usage(
            "cleanup needs a selector: image IDs, --name, --tag, --older-than, --deprecated, --disabled-for, --unused-for, --all or --orphans".to_owned(),
        ),
        RulesError::DisabledForWithDisable => {
            Error::Usage("--disabled-for selects images already disabled, so it can't go with --disable".to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn resolved(args: &[&str]) -> Result<Settings, Error> {
        let now = "2026-11-30T12:00:00Z".parse().unwrap();
        resolve(Cli::try_parse_from(args).expect("a valid command line"), now)
    }

    #[test]
    fn a_time_given_as_in_counts_from_the_runs_clock() {
        let settings = resolved(&["amictl", "deprecate", "ami-12345678", "--in", "30d"]).unwrap();
        let Run::Stage {
            change: StageChange::Deprecate(Some(at)),
            ..
        } = settings.command
        else {
            panic!("a deprecation");
        };
        assert_eq!(at.to_string(), "2026-12-30T12:00:00Z");
    }

    #[test]
    fn a_role_named_twice_in_one_account_is_worked_once_with_a_warning() {
        let role = |name: &str| format!("arn:aws:iam::123456789012:role/{name}");
        let (first, second) = (role("a"), role("b"));
        let settings = resolved(&["amictl", "describe", "--role-arn", &first, "--role-arn", &second]).unwrap();
        let Run::Describe(describe) = settings.command else {
            panic!("a describe");
        };
        assert_eq!(describe.scope.roles.len(), 1);
        assert_eq!(settings.warnings.len(), 1, "{:?}", settings.warnings);
    }

    #[test]
    fn cleanup_without_a_selector_and_reserved_tag_keys_are_refused_before_any_request() {
        let refused = resolved(&["amictl", "cleanup", "--keep", "2"])
            .err()
            .expect("no selector");
        assert!(refused.to_string().starts_with("cleanup needs a selector"), "{refused}");
        let refused = resolved(&["amictl", "create", "--instance-id", "i-12345678", "--tag", "amictl:x=1"])
            .err()
            .expect("a reserved key");
        assert_eq!(refused.exit_code(), 2, "{refused}");
    }
}
