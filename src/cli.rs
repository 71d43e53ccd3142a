//! The command line, as clap derives it. Values are parsed into the types of `crate::types`,
//! so a bad value is a usage error (exit 2) before anything else runs.

use clap::{Args, Parser, Subcommand};

use std::path::PathBuf;

use crate::model::Backing;
use crate::output::{ColorChoice, OutputFormat};
use crate::pipeline::plan::GroupBy;
use crate::types::{
    AccountId, Age, DeprecateAt, DeprecateIn, Description, EndpointUrl, HumanDuration, ImageId, IncludeShared,
    InstanceId, KmsKey, LaunchTemplateRef, NameGlob, NameTemplate, OrgArn, OuArn, Owner, ParameterLabel, ParameterName,
    Price, Rate, Region, RoleArn, RoleName, Shard, Tag,
};

/// One of `choices`, parsed by its type's own `FromStr`: the domain types know nothing of clap.
fn choice<T>(choices: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(choices).try_map(|s| s.parse::<T>())
}

#[derive(Debug, Parser)]
#[command(
    name = "amictl",
    version = env!("AMICTL_VERSION"),
    about = "The whole life of an Amazon Machine Image: create, describe, share, deregister, clean up",
    long_about = None,
    after_help = "Exit codes: 0 success, 1 the operation failed, 2 usage error (nothing was sent), 130 interrupted.\n\
                  Credentials come from the standard AWS chain: environment, profiles, SSO, web identity, instance metadata."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the command's name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// AWS region [default: AWS_REGION, AWS_DEFAULT_REGION, or the profile's region]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<Region>,

    /// Named profile from the AWS config and credentials files [default: AWS_PROFILE or "default"]
    #[arg(long, global = true, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub profile: Option<String>,

    /// EC2 endpoint to talk to, e.g. a local test server [env AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<EndpointUrl>,

    /// Attempts per AWS request, retries included [default: 10, or AWS_MAX_ATTEMPTS]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: Option<u32>,

    /// Give up on one AWS request, retries included, after this long (e.g. 30s, 2m) [default: 1m]
    #[arg(long, global = true, value_name = "DURATION")]
    pub timeout: Option<HumanDuration>,

    /// Allow an STS endpoint (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL) on plain http to another machine, whose answers are credentials, e.g. a test server in CI [default: refused]
    #[arg(long, global = true, env = "AMICTL_ALLOW_HTTP_STS", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_http_sts: bool,

    /// At most this many requests a second of each bulk action (deregister, delete, read permissions), leaving EC2's rate limits to the account's other tools [default: as fast as EC2 allows, learned from its answers]
    #[arg(long, global = true, value_name = "N")]
    pub max_rate: Option<Rate>,

    /// Result format: a table for people, one JSON document for programs, or markdown for CI job summaries and pull requests
    #[arg(short, long, global = true, value_parser = choice::<OutputFormat>(OutputFormat::CHOICES), default_value = "table")]
    pub output: OutputFormat,

    /// Print only the result (and errors): no warnings, no progress
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log more to stderr (-v, -vv, -vvv); RUST_LOG works too
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour [NO_COLOR is honoured with auto]
    #[arg(long, global = true, value_parser = choice::<ColorChoice>(ColorChoice::CHOICES), default_value = "auto", value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an image (AMI) from an EBS-backed instance
    #[command(
        after_help = "By default EC2 reboots the instance so that its file systems are consistent in the image; \
        --no-reboot skips the reboot, at the cost of guaranteed file-system integrity.\n\n\
        Without --instance-id, amictl images the EC2 instance it runs on (asking the instance metadata service), \
        named {instance_name}-{timestamp} unless --name says otherwise.\n\n\
        Examples:\n  \
        amictl create --no-reboot\n  \
        amictl create --instance-id i-0123456789abcdef0 --name 'web-{date}' --no-reboot\n  \
        amictl create --instance-id i-0123456789abcdef0 --name '{instance_name}-{timestamp}' --tag team=web --wait\n  \
        image=$(amictl -o json create --instance-id i-0123456789abcdef0 --name 'web-{timestamp}' | jq -r .image_id)"
    )]
    Create(CreateArgs),

    /// Copy an image to other regions, with its tags and launch permissions; a re-run copies nothing twice
    #[command(
        after_help = "The source is the image in --region. Each copy is tagged with its source \
        (amictl:source-image-id, amictl:source-region), so a re-run finds the copies it made (in any state but failed) \
        and makes no second one; a failed copy is copied again. Launch permissions are given once a copy is available: \
        --copy-permissions waits for it.\n\n\
        Examples:\n  \
        amictl copy ami-0123456789abcdef0 --to-regions eu-west-1,us-west-2 --copy-tags --wait\n  \
        amictl copy ami-0123456789abcdef0 --all-regions --copy-permissions --dry-run\n  \
        amictl copy ami-0123456789abcdef0 --to-regions eu-west-1 --encrypt --kms-key-id eu-west-1=alias/images\n  \
        amictl -o json copy ami-0123456789abcdef0 --to-regions eu-west-1,us-west-2 | jq -r '.[] | \"\\(.region) \\(.image_id)\"'"
    )]
    Copy(CopyArgs),

    /// Publish an image to what launches it: SSM parameters and launch templates, in each region
    #[command(
        after_help = "An SSM parameter gets the image ID as a new version of data type aws:ec2:image (made if missing); \
        SSM checks such a value after PutParameter answers, so amictl reads the parameter back and says if SSM \
        refused it. --label moves a label such as prod to that version. A launch template gets a new version made \
        from its default version with only the image changed, which becomes the default unless --no-default. What \
        names the image already gets nothing, so a re-run changes nothing. Each row lists who launches through the \
        template or parameter (templates, Auto Scaling groups, fleets) and whether they follow the change or stay \
        (a pinned version or label). With --regions, each region gets its copy of the image (made by amictl copy).\n\n\
        Examples:\n  \
        amictl publish ami-0123456789abcdef0 --ssm-parameter /golden/web --dry-run\n  \
        amictl publish ami-0123456789abcdef0 --ssm-parameter /golden/web --label prod --regions us-east-1,eu-west-1\n  \
        amictl publish ami-0123456789abcdef0 --launch-template web --launch-template lt-0123456789abcdef0"
    )]
    Publish(PublishArgs),

    /// Who uses images: this account's consumers, other accounts' by EC2's usage reports, and each member account's own (--org, --accounts)
    #[command(
        after_help = "In the image's account, the consumers cleanup checks (instances, launch templates, Auto Scaling \
        groups, fleets, spot requests, SSM parameters). For other accounts, EC2's image usage report on each shared \
        image: the accounts whose instances or launch templates reference it, and how many (a report made within \
        --max-report-age is reused; one being made is waited for at most --report-timeout). With --org or --accounts \
        (through --role-name), each member account's own consumers, named. Exit 1 where something could not be read.\n\n\
        Examples:\n  \
        amictl usage ami-0123456789abcdef0\n  \
        amictl usage ami-0123456789abcdef0 --org --role-name amictl-read -o json"
    )]
    Usage(Box<UsageArgs>),

    /// Show images: the account's own by default, newest first, or the ones named
    #[command(after_help = "Examples:\n  \
        amictl describe\n  \
        amictl describe ami-0123456789abcdef0\n  \
        amictl describe --owner amazon --backing instance-store\n  \
        amictl describe --name 'web-*' --tag team=web -o json | jq -r '.[].image_id'")]
    Describe(DescribeArgs),

    /// Show and change who may launch images: accounts, organizations, OUs, or everyone
    #[command(subcommand)]
    Permissions(PermissionsCommand),

    /// Deregister images; with --delete-snapshots, delete the snapshots nothing else uses
    #[command(
        after_help = "Deregistering does not affect instances already running from an image, but amictl refuses \
        an image that something can still launch (instances, launch templates, Auto Scaling groups, fleets, spot \
        requests, SSM parameters; --allow-in-use overrides) or that other accounts may launch (--include-shared \
        overrides). An EBS-backed image's snapshots stay, and keep costing money, until deleted.\n\n\
        Examples:\n  \
        amictl deregister ami-0123456789abcdef0 --dry-run\n  \
        amictl deregister ami-0123456789abcdef0 ami-0fedcba9876543210 --delete-snapshots"
    )]
    Deregister(DeregisterArgs),

    /// Remove the images a policy selects, with their snapshots, and orphaned snapshots
    #[command(
        after_help = "Never touches an image that something can still launch (instances, launch templates, Auto \
        Scaling groups, fleets, spot requests, SSM parameters), that other accounts may launch, that is protected or \
        still pending, nor a snapshot another image uses. Carrying a plan out needs --yes; without it, a terminal is asked \
        and anything else gets the plan and exit code 2.\n\n\
        Examples:\n  \
        amictl cleanup --name 'app-*' --keep 2 --group-by name --dry-run\n  \
        amictl cleanup --tag env=ci --older-than 30d --yes\n  \
        amictl cleanup --orphans --yes\n  \
        amictl cleanup --older-than 90d --save-plan plan.json && amictl cleanup --apply-plan plan.json --yes"
    )]
    Cleanup(Box<CleanupArgs>),

    /// Schedule images' deprecation (deprecated images drop out of listings but still launch), or cancel it
    #[command(after_help = "Examples:\n  \
        amictl deprecate ami-0123456789abcdef0 --in 30d\n  \
        amictl deprecate ami-0123456789abcdef0 --at 2027-01-31\n  \
        amictl deprecate ami-0123456789abcdef0 --cancel")]
    Deprecate(DeprecateArgs),

    /// Disable images: nothing can launch them and their launch permissions go (amictl records them); snapshots stay
    #[command(
        after_help = "Reversible: `amictl enable --restore-permissions` brings an image back with the launch permissions \
        it had. The same safety rules as deregister: an image something can still launch, or that other accounts may \
        launch, is kept unless --allow-in-use / --include-shared.\n\n\
        Examples:\n  \
        amictl disable ami-0123456789abcdef0 --dry-run\n  \
        amictl cleanup --name 'app-*' --older-than 90d --disable --yes"
    )]
    Disable(DisableArgs),

    /// Enable disabled images again; --restore-permissions gives back the launch permissions amictl recorded
    Enable(EnableArgs),

    /// Turn deregistration protection on: EC2 refuses to deregister the images
    Protect(ProtectArgs),

    /// Turn deregistration protection off (with the cooldown, the images stay protected 24 hours more)
    Unprotect(ImageList),

    /// Restore images from the Recycle Bin
    Restore(ImageList),

    /// Check a policy file for `cleanup --policy`, offline (no region, no credentials)
    #[command(subcommand)]
    Policy(PolicyCommand),

    /// Print a shell completion script (e.g. `amictl completions bash > /etc/bash_completion.d/amictl`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page in roff (e.g. `amictl man > /usr/local/share/man/man1/amictl.1`)
    Man,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Images to describe (ami-…); one ID shows its details
    #[arg(value_name = "IMAGE_ID")]
    pub image_ids: Vec<ImageId>,

    /// Whose images: self, amazon, aws-marketplace or an account ID (repeatable) [default: self, unless IDs are given]
    #[arg(long = "owner", value_name = "OWNER")]
    pub owners: Vec<Owner>,

    /// Only images whose name matches this glob (e.g. 'web-*')
    #[arg(long, value_name = "GLOB")]
    pub name: Option<NameGlob>,

    /// Only images with this tag (repeatable; all must match)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<Tag>,

    /// Only images with this kind of root device
    #[arg(long, value_parser = choice::<Backing>(Backing::CHOICES))]
    pub backing: Option<Backing>,

    /// Include deprecated images
    #[arg(long)]
    pub include_deprecated: bool,

    /// Include disabled images
    #[arg(long)]
    pub include_disabled: bool,

    /// List the images in the Recycle Bin instead (deregistered, restorable until they leave it)
    #[arg(long, conflicts_with_all = ["owners", "name", "tags", "backing", "include_deprecated", "include_disabled"])]
    pub recycle_bin: bool,

    /// Snapshot storage price in USD per GB-month, for the cost estimate
    #[arg(long, value_name = "USD", default_value = "0.05")]
    pub snapshot_price: Price,

    /// Accounts × regions read at once, and requests in flight, for the whole run (each account × region has its own EC2 rate limits)
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,

    #[command(flatten)]
    pub regions: ScopeArgs,
}

/// Several regions, and accounts, at once, worked concurrently.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("account_source").multiple(true).args(["org", "accounts", "accounts_file"]))]
pub struct ScopeArgs {
    /// These regions, comma-separated (e.g. us-east-1,eu-west-1), instead of --region's one
    #[arg(long, value_name = "REGION,…", value_delimiter = ',', conflicts_with = "all_regions")]
    pub regions: Vec<Region>,

    /// Every region enabled for the account (as DescribeRegions lists them)
    #[arg(long)]
    pub all_regions: bool,

    /// Work in the account of this IAM role, by assuming it (repeatable: several accounts at once)
    #[arg(long = "role-arn", value_name = "ARN", conflicts_with_all = ["org", "accounts", "accounts_file"])]
    pub role_arns: Vec<RoleArn>,

    /// Work in every active account of the AWS Organization (listed from the management or a delegated administrator account), through --role-name
    #[arg(long, requires = "role_name")]
    pub org: bool,

    /// Work in these accounts, comma-separated, through --role-name
    #[arg(long, value_name = "ID,…", value_delimiter = ',', requires = "role_name")]
    pub accounts: Vec<AccountId>,

    /// Work in the accounts listed in FILE (one ID per line; # starts a comment), through --role-name
    #[arg(long, value_name = "FILE", requires = "role_name")]
    pub accounts_file: Option<PathBuf>,

    /// The IAM role to assume in each account of --org, --accounts or --accounts-file (its name, with its path if any)
    #[arg(long, value_name = "NAME", requires = "account_source")]
    pub role_name: Option<RoleName>,

    /// Leave these accounts out, comma-separated
    #[arg(long, value_name = "ID,…", value_delimiter = ',', requires = "account_source")]
    pub exclude_accounts: Vec<AccountId>,

    /// Also work in the caller's own account, with its own credentials (left out of --org unless given)
    #[arg(long, requires = "account_source")]
    pub include_self: bool,

    /// Only the I-th of N parts of the accounts (by account ID), for a CI matrix of N jobs, e.g. 2/4
    #[arg(long, value_name = "I/N", requires = "account_source")]
    pub shard: Option<Shard>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The EBS-backed instance to image (i-…) [default: the EC2 instance amictl runs on]
    #[arg(long, value_name = "INSTANCE_ID")]
    pub instance_id: Option<InstanceId>,

    /// Image name (3-128 characters); placeholders {date}, {timestamp} (UTC), {instance_id}, {instance_name} [default: {instance_name}-{timestamp}, or {instance_id}-{timestamp} without a Name tag]
    #[arg(long, value_name = "NAME")]
    pub name: Option<NameTemplate>,

    /// Image description (up to 255 characters)
    #[arg(long, value_name = "TEXT")]
    pub description: Option<Description>,

    #[command(flatten)]
    pub reboot: RebootArgs,

    #[command(flatten)]
    pub tagging: TagArgs,

    /// Copy the instance's tags to the image (not aws: ones; --tag wins on the same key)
    #[arg(long)]
    pub copy_instance_tags: bool,

    /// Once the image is available, copy it to these regions, comma-separated (waits for the image; the copies get its name and tags)
    #[arg(long, value_name = "REGION,…", value_delimiter = ',')]
    pub copy_to_regions: Vec<Region>,

    /// Deprecate the image this long after creating it (e.g. 90d; at most ten years)
    #[arg(long, value_name = "DURATION")]
    pub deprecate_in: Option<DeprecateIn>,

    #[command(flatten)]
    pub waiting: WaitArgs,

    #[command(flatten)]
    pub publish: PublishToArgs,

    /// Ask EC2 whether the image could be created, without creating it
    #[arg(long)]
    pub dry_run: bool,
}

/// Whether EC2 reboots the instance it images (create).
#[derive(Debug, Args)]
pub struct RebootArgs {
    /// Don't reboot the instance: no downtime, but the image's file-system integrity is not guaranteed
    #[arg(long)]
    pub no_reboot: bool,

    /// Let EC2 reboot this very machine when imaging the instance amictl runs on
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("targets").required(true).args(["to_regions", "all_regions"]))]
#[command(mut_arg("tags", |arg| arg.help("Tag the copies (repeatable)")))]
#[command(mut_arg("snapshot_tags", |arg| arg.help("Tag the copies' snapshots (repeatable)")))]
#[command(mut_arg("wait", |arg| arg.help("Wait until every copy is available, with a progress line per region")))]
pub struct CopyArgs {
    /// The image to copy (ami-…), in --region
    #[arg(value_name = "IMAGE_ID")]
    pub image_id: ImageId,

    /// Copy to these regions, comma-separated (the source's own region is reported, not copied)
    #[arg(long, value_name = "REGION,…", value_delimiter = ',')]
    pub to_regions: Vec<Region>,

    /// Copy to every other region enabled for the account
    #[arg(long)]
    pub all_regions: bool,

    /// The copies' name; placeholders {date}, {timestamp} (UTC), {source_name}, {source_region}, {instance_id} [default: the source's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<NameTemplate>,

    /// The copies' description (up to 255 characters) [default: the source's]
    #[arg(long, value_name = "TEXT")]
    pub description: Option<Description>,

    /// Give the copies the source's tags (not aws: ones, nor amictl's records of the source's own stage; --tag wins on the same key)
    #[arg(long)]
    pub copy_tags: bool,

    #[command(flatten)]
    pub tagging: TagArgs,

    #[command(flatten)]
    pub permissions: CopyPermissionsArgs,

    #[command(flatten)]
    pub encryption: EncryptArgs,

    #[command(flatten)]
    pub deprecation: CopyDeprecationArgs,

    #[command(flatten)]
    pub waiting: WaitArgs,

    #[command(flatten)]
    pub publish: PublishToArgs,

    /// Ask EC2 (DryRun) whether each copy could be made; copy nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The source's launch permissions, for its copies (copy).
#[derive(Debug, Args)]
pub struct CopyPermissionsArgs {
    /// Give the copies the source's launch permissions (accounts, organizations, OUs; public needs --yes); waits for each copy to be available
    #[arg(long)]
    pub copy_permissions: bool,

    /// Yes, make the copies public when the source is (with --copy-permissions)
    #[arg(long)]
    pub yes: bool,
}

/// When the copies are deprecated (copy).
#[derive(Debug, Args)]
pub struct CopyDeprecationArgs {
    /// Deprecate the copies this long from now (e.g. 90d; at most ten years) [default: at the source's deprecation time, if it has one]
    #[arg(long, value_name = "DURATION", conflicts_with = "no_deprecation")]
    pub deprecate_in: Option<DeprecateIn>,

    /// Leave the copies without a deprecation time, whatever the source's (an earlier copy's stays as it is)
    #[arg(long)]
    pub no_deprecation: bool,
}

/// Encrypting the copies' snapshots (copy).
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Encrypt the copies' snapshots (with the account's default EBS key unless --kms-key-id)
    #[arg(long)]
    pub encrypt: bool,

    /// The KMS key to encrypt with: KEY for every region, or REGION=KEY (repeatable); key ID, alias/NAME or ARN
    #[arg(long = "kms-key-id", value_name = "[REGION=]KEY", requires = "encrypt")]
    pub kms_key_ids: Vec<KmsKey>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("publish_to").required(true).multiple(true).args(["ssm_parameters", "launch_templates"]))]
pub struct PublishArgs {
    /// The image to publish (ami-…), in --region; it must be available
    #[arg(value_name = "IMAGE_ID")]
    pub image_id: ImageId,

    #[command(flatten)]
    pub to: PublishToArgs,

    /// Publish in these regions, comma-separated, each its copy of the image (found by the tags `amictl copy` gives copies) [default: --region]
    #[arg(long, value_name = "REGION,…", value_delimiter = ',')]
    pub regions: Vec<Region>,

    /// Read the templates and parameters and say what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// What an image is published to (publish, and create and copy once their images are available).
#[derive(Debug, Args)]
pub struct PublishToArgs {
    /// An SSM parameter to hold the image ID, data type aws:ec2:image: made if missing, a new version otherwise (repeatable)
    #[arg(long = "ssm-parameter", value_name = "NAME")]
    pub ssm_parameters: Vec<ParameterName>,

    /// Move this label (e.g. prod) to each parameter's new version
    #[arg(long, value_name = "LABEL", requires = "ssm_parameters")]
    pub label: Option<ParameterLabel>,

    /// A launch template to give a new version naming the image, made its default: its name or ID (repeatable)
    #[arg(long = "launch-template", value_name = "NAME|ID")]
    pub launch_templates: Vec<LaunchTemplateRef>,

    /// Leave each template's default version as it is (the new version is only the latest)
    #[arg(long, requires = "launch_templates")]
    pub no_default: bool,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub images: ImageList,

    /// Reuse a usage report made within this long (e.g. 12h, 2d)
    #[arg(long, value_name = "DURATION", default_value = "1d")]
    pub max_report_age: HumanDuration,

    /// Wait at most this long for usage reports being made
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub report_timeout: HumanDuration,

    /// Make and read no usage report (this account's consumers, and the member accounts', only)
    #[arg(long, conflicts_with_all = ["max_report_age", "report_timeout"])]
    pub no_report: bool,

    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// Tags for new images and their snapshots (create, copy).
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Tag the image (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<Tag>,

    /// Tag the image's snapshots (repeatable)
    #[arg(long = "snapshot-tag", value_name = "KEY=VALUE")]
    pub snapshot_tags: Vec<Tag>,
}

/// Waiting for new images to be available (create, copy).
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the image is available
    #[arg(long)]
    pub wait: bool,

    /// Give up waiting after this long (e.g. 90s, 45m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "60m", requires = "wait")]
    pub wait_timeout: HumanDuration,
}

/// The safety rules of the commands that remove images, and their dry run (deregister,
/// disable, cleanup).
#[derive(Debug, Args)]
pub struct RemovalArgs {
    /// Remove images even when something can launch them (instances, launch templates, Auto Scaling groups, fleets, spot requests, SSM parameters)
    #[arg(long)]
    pub allow_in_use: bool,

    /// Remove images other accounts may launch (public, or shared with accounts, organizations or OUs); =unused: only those no other account uses, by EC2's image usage reports
    #[arg(
        long,
        value_name = "unused",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all"
    )]
    pub include_shared: Option<IncludeShared>,

    /// With --include-shared=unused: reuse a usage report made within this long (e.g. 12h, 2d)
    #[arg(long, value_name = "DURATION", default_value = "1d", requires = "include_shared")]
    pub max_report_age: HumanDuration,

    /// With --include-shared=unused: wait at most this long for usage reports being made (the image is kept, unchecked, if not)
    #[arg(long, value_name = "DURATION", default_value = "10m", requires = "include_shared")]
    pub report_timeout: HumanDuration,

    /// Show the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Images named on the command line, at least one.
#[derive(Debug, Args)]
pub struct ImageList {
    /// The images (ami-…)
    #[arg(value_name = "IMAGE_ID", required = true)]
    pub image_ids: Vec<ImageId>,
}

/// How the removal commands carry a plan out and count its savings.
#[derive(Debug, Args)]
pub struct ExecutionArgs {
    /// Accounts × regions read, requests in flight, and removals in flight, at once, for the whole run [default: 128 read and in flight, 8 removals]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: Option<u16>,

    /// Snapshot storage price in USD per GB-month, for the estimated saving
    #[arg(long, value_name = "USD", default_value = "0.05")]
    pub snapshot_price: Price,
}

#[derive(Debug, Args)]
#[command(mut_arg("allow_in_use", |arg| arg.help("Deregister images even when something can launch them (instances, launch templates, Auto Scaling groups, fleets, spot requests, SSM parameters)")))]
#[command(mut_arg("include_shared", |arg| arg.help("Deregister images other accounts may launch (public, or shared with accounts, organizations or OUs)")))]
#[command(mut_arg("image_ids", |arg| arg.help("The images to deregister (ami-…); naming them is the confirmation")))]
pub struct DeregisterArgs {
    #[command(flatten)]
    pub images: ImageList,

    /// Also delete the images' snapshots that no other image uses
    #[arg(long)]
    pub delete_snapshots: bool,

    #[command(flatten)]
    pub removal: RemovalArgs,

    #[command(flatten)]
    pub execution: ExecutionArgs,
}

/// What plans a cleanup on the command line (selectors, the policy and the regions), which a
/// policy file or a saved plan says instead: each conflicts with `--policy` and `--apply-plan`
/// (listed one by one, so that clap's refusal names the one given).
const PLANNING_FLAGS: [&str; 18] = [
    "image_ids",
    "name",
    "tags",
    "older_than",
    "all",
    "deprecated",
    "disabled_for",
    "unused_for",
    "disable",
    "exclude_tags",
    "keep",
    "group_by",
    "orphans",
    "orphans_older_than",
    "allow_in_use",
    "include_shared",
    "regions",
    "all_regions",
];

#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub selectors: SelectorArgs,

    /// Disable the selected images (reversible) instead of deregistering them; their snapshots stay
    #[arg(long, conflicts_with = "orphans")]
    pub disable: bool,

    /// Leave out images with this tag (repeatable)
    #[arg(long = "exclude-tag", value_name = "KEY=VALUE")]
    pub exclude_tags: Vec<Tag>,

    /// Keep the N newest images of each group
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep: usize,

    /// Groups for --keep: none (the whole selection), name (names without a trailing version or timestamp), or tag:KEY
    #[arg(long, value_name = "GROUPING", default_value = "none")]
    pub group_by: GroupBy,

    #[command(flatten)]
    pub orphans: OrphanArgs,

    #[command(flatten)]
    pub removal: RemovalArgs,

    /// List the images kept only by --keep in the table too (JSON always lists every image)
    #[arg(long)]
    pub show_kept: bool,

    /// Carry the plan out without asking
    #[arg(long)]
    pub yes: bool,

    /// Write the plan as JSON to FILE and change nothing (review it, then --apply-plan)
    #[arg(long, value_name = "FILE", conflicts_with = "apply_plan")]
    pub save_plan: Option<PathBuf>,

    /// Carry out a plan saved with --save-plan: only what its own selection and policy still pick now, and the plan lists
    #[arg(long, value_name = "FILE", conflicts_with_all = PLANNING_FLAGS, conflicts_with = "policy")]
    pub apply_plan: Option<PathBuf>,

    /// Run the named policies of a policy file (TOML) as one plan, instead of selectors and options on the command line; `amictl policy check FILE` checks it
    #[arg(long, value_name = "FILE", conflicts_with_all = PLANNING_FLAGS)]
    pub policy: Option<PathBuf>,

    #[command(flatten)]
    pub regions: ScopeArgs,

    #[command(flatten)]
    pub execution: ExecutionArgs,
}

/// Which images a cleanup selects (cleanup).
#[derive(Debug, Args)]
pub struct SelectorArgs {
    /// Only these images (ami-…)
    #[arg(value_name = "IMAGE_ID")]
    pub image_ids: Vec<ImageId>,

    /// Only images whose name matches this glob (e.g. 'app-*')
    #[arg(long, value_name = "GLOB")]
    pub name: Option<NameGlob>,

    /// Only images with this tag (repeatable; all must match)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<Tag>,

    /// Only images created longer ago than this (e.g. 30d, 12h, 6weeks)
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<HumanDuration>,

    /// Every image of the account's in the region (still subject to --keep, --exclude-tag and the safety rules)
    #[arg(long)]
    pub all: bool,

    /// Only images whose deprecation time has come
    #[arg(long)]
    pub deprecated: bool,

    /// Only images amictl disabled at least this long ago (e.g. 14d; 0s: any it disabled)
    #[arg(long, value_name = "DURATION", conflicts_with = "disable")]
    pub disabled_for: Option<Age>,

    /// Only images not launched for this long (by EC2's last launch time, which lags up to a day; never launched: since creation)
    #[arg(long, value_name = "DURATION")]
    pub unused_for: Option<Age>,
}

/// Orphaned snapshots (cleanup).
#[derive(Debug, Args)]
pub struct OrphanArgs {
    /// Also delete snapshots made for images that no longer exist (alone, a selector of its own)
    #[arg(long)]
    pub orphans: bool,

    /// Only orphaned snapshots at least this old (a younger one may belong to an image still being made)
    #[arg(long, value_name = "DURATION", default_value = "1d", requires = "orphans")]
    pub orphans_older_than: Age,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file: unknown keys, bad values and conflicting options exit 2 naming the line and column
    #[command(
        after_help = "Example:\n  amictl policy check amictl.toml && amictl cleanup --policy amictl.toml --dry-run"
    )]
    Check {
        /// The policy file (TOML)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Images named on the command line, for the commands that move them between stages.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("when").required(true).args(["at", "within", "cancel"]))]
pub struct DeprecateArgs {
    #[command(flatten)]
    pub images: ImageList,

    /// Deprecate at this time: a date (2027-01-31, midnight UTC) or RFC 3339; to come, within ten years
    #[arg(long, value_name = "TIME")]
    pub at: Option<DeprecateAt>,

    /// Deprecate this long from now (e.g. 30d; at most ten years)
    #[arg(long = "in", value_name = "DURATION")]
    pub within: Option<DeprecateIn>,

    /// Cancel the images' deprecation
    #[arg(long)]
    pub cancel: bool,
}

#[derive(Debug, Args)]
#[command(mut_arg("image_ids", |arg| arg.help("The images to disable (ami-…); naming them is the confirmation")))]
#[command(mut_arg("allow_in_use", |arg| arg.help("Disable images even when something can launch them (instances, launch templates, Auto Scaling groups, fleets, spot requests, SSM parameters)")))]
#[command(mut_arg("include_shared", |arg| arg.help("Disable images other accounts may launch (public, or shared with accounts, organizations or OUs); their permissions are recorded for enable --restore-permissions")))]
pub struct DisableArgs {
    #[command(flatten)]
    pub images: ImageList,

    #[command(flatten)]
    pub removal: RemovalArgs,

    #[command(flatten)]
    pub execution: ExecutionArgs,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    #[command(flatten)]
    pub images: ImageList,

    /// Give back the launch permissions amictl recorded when it disabled the images
    #[arg(long)]
    pub restore_permissions: bool,

    /// Give back a recorded public launch permission too (every AWS account could launch the image)
    #[arg(long, requires = "restore_permissions")]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ProtectArgs {
    #[command(flatten)]
    pub images: ImageList,

    /// Keep the images protected for 24 hours after protection is turned off
    #[arg(long)]
    pub cooldown: bool,
}

/// Launch permission is implicit (the owner always may launch an image), explicit (named
/// accounts, organizations, OUs) or public (every AWS account).
#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// Show who may launch the images
    Show(ImageList),

    /// Let accounts, organizations or OUs launch the images
    #[command(
        after_help = "Example:\n  amictl permissions add ami-0123456789abcdef0 --account 111122223333 --snapshots"
    )]
    Add(PermissionsChange),

    /// Take launch permission away from accounts, organizations or OUs
    Remove(PermissionsChange),

    /// Let every AWS account launch the images (needs --yes)
    #[command(
        after_help = "Refused when an image has encrypted snapshots (EC2 can't share those publicly) or when \
        image block public access is on in the region."
    )]
    Public(PermissionsPublic),

    /// Take public access away; explicit grants stay
    Private(PermissionsSimpleChange),

    /// Remove every explicit grant and public access
    Reset(PermissionsReset),
}

#[derive(Debug, Args)]
pub struct PermissionsChange {
    #[command(flatten)]
    pub images: ImageList,

    /// An AWS account ID (12 digits; repeatable)
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<AccountId>,

    /// An organization ARN (repeatable)
    #[arg(long = "org", value_name = "ARN")]
    pub orgs: Vec<OrgArn>,

    /// An organizational unit ARN (repeatable)
    #[arg(long = "ou", value_name = "ARN")]
    pub ous: Vec<OuArn>,

    /// Also grant (or revoke) the accounts create-volume permission on the images' snapshots, which they need to copy the images
    #[arg(long)]
    pub snapshots: bool,

    /// Ask EC2 whether the change would succeed; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PermissionsSimpleChange {
    #[command(flatten)]
    pub images: ImageList,

    /// Ask EC2 whether the change would succeed; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PermissionsPublic {
    #[command(flatten)]
    pub change: PermissionsSimpleChange,

    /// Yes, every AWS account may launch these images
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PermissionsReset {
    #[command(flatten)]
    pub change: PermissionsSimpleChange,

    /// Also remove every create-volume permission from the images' snapshots
    #[arg(long)]
    pub snapshots: bool,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// clap's own consistency checks of the whole command tree (conflicts, requirements,
    /// groups and defaults that name arguments that exist).
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_wait_timeout_needs_wait() {
        for command in [
            [
                "amictl",
                "copy",
                "ami-12345678",
                "--to-regions",
                "eu-west-1",
                "--wait-timeout",
                "5m",
            ]
            .as_slice(),
            [
                "amictl",
                "create",
                "--instance-id",
                "i-12345678",
                "--wait-timeout",
                "5m",
            ]
            .as_slice(),
        ] {
            let refused = Cli::try_parse_from(command).expect_err("--wait-timeout without --wait");
            assert_eq!(
                refused.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{command:?}"
            );
        }
    }

    #[test]
    fn a_policy_or_a_saved_plan_refuses_each_planning_flag_by_its_name() {
        for file_flag in ["--policy", "--apply-plan"] {
            for given in [["--name", "app-*"], ["--regions", "eu-west-1"], ["--keep", "2"]] {
                let mut command = vec!["amictl", "cleanup", file_flag, "f"];
                command.extend(given);
                let refused = Cli::try_parse_from(&command).expect_err("a conflict");
                assert_eq!(refused.kind(), clap::error::ErrorKind::ArgumentConflict, "{command:?}");
                let said = refused.render().to_string();
                let first = said.lines().next().unwrap_or_default();
                assert!(first.contains(given[0]) && !first.contains("--all-regions"), "{first}");
            }
        }
    }
}
