//! `amictl create`: an AMI from an EBS-backed instance, safe to run from CI.
//!
//! Checks before creating (the instance exists, can be imaged, the name is free), creates with
//! tags in the same request, and optionally waits. The result is printed even when waiting
//! fails, so that a pipeline always learns the new image's ID.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use comfy_table::Table;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::Context;
use crate::cli::CreateArgs;
use crate::ec2::ThisInstance;
use crate::ec2::{CreatedImage, Creation, ImageSpec};
use crate::error::Error;
use crate::model::{Image, Instance};
use crate::output::{self, Printer, Render, elapsed, yes_no};
use crate::types::{ImageId, InstanceId, Placeholder};

/// How often to look at a pending image, and for how long.
#[derive(Debug, Clone, Copy)]
struct WaitPolicy {
    timeout: Duration,
    first_poll: Duration,
    max_poll: Duration,
    /// A new image can be invisible to DescribeImages for a moment (eventual consistency).
    not_found_grace: Duration,
}

impl WaitPolicy {
    fn with_timeout(timeout: Duration) -> WaitPolicy {
        WaitPolicy {
            timeout,
            first_poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(15),
            not_found_grace: Duration::from_mins(1),
        }
    }
}

/// How long to look for the snapshot IDs of an image when they must be tagged afterwards.
const SNAPSHOT_IDS_TIMEOUT: Duration = Duration::from_mins(2);

/// The instance to image: named with `--instance-id`, or the machine amictl runs on.
#[derive(Debug, Clone)]
pub struct Target {
    pub instance_id: InstanceId,
    /// Found through the instance metadata service: imaging it may reboot this very machine.
    pub this_machine: bool,
}

impl Target {
    pub fn new(args: &CreateArgs, this_instance: Option<&ThisInstance>) -> Option<Target> {
        match (&args.instance_id, this_instance) {
            (Some(id), _) => Some(Target {
                instance_id: id.clone(),
                this_machine: false,
            }),
            (None, Some(this)) => Some(Target {
                instance_id: this.instance_id.clone(),
                this_machine: true,
            }),
            (None, None) => None,
        }
    }
}

pub async fn run(ctx: &Context<'_>, args: CreateArgs, target: Target) -> anyhow::Result<()> {
    let outcome = create(ctx, &args, &target, WaitPolicy::with_timeout(args.wait_timeout.0)).await?;
    ctx.printer.print(&outcome.result)?;
    match outcome.failure {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}

/// The result, and the error to exit with after printing it (a failed or timed-out wait).
struct Outcome {
    result: Created,
    failure: Option<Error>,
}

/// What was created; the JSON object `create` prints.
#[derive(Debug, Serialize)]
struct Created {
    image_id: Option<String>,
    name: String,
    description: Option<String>,
    instance_id: String,
    no_reboot: bool,
    state: Option<String>,
    tags: BTreeMap<String, String>,
    snapshot_ids: Vec<String>,
    dry_run: bool,
}

impl Created {
    fn update_from(&mut self, image: &Image) {
        self.state.clone_from(&image.state);
        self.snapshot_ids.clone_from(&image.snapshot_ids);
    }
}

impl Render for Created {
    fn tables(&self, printer: &Printer) -> Vec<Table> {
        let mut table = printer.table(&["IMAGE ID", "NAME", "INSTANCE", "REBOOTED", "STATE"]);
        table.add_row(vec![
            self.image_id.as_deref().unwrap_or("(dry run)"),
            &self.name,
            &self.instance_id,
            yes_no(Some(!self.no_reboot)),
            self.state.as_deref().unwrap_or("-"),
        ]);
        vec![table]
    }
}

async fn create(ctx: &Context<'_>, args: &CreateArgs, target: &Target, policy: WaitPolicy) -> Result<Outcome, Error> {
    check_tag_keys(args)?;
    if target.this_machine && !args.no_reboot && !args.dry_run && !args.yes {
        confirm_rebooting_this_machine(&target.instance_id)?;
    }
    let started = ctx.printer.now();
    let ec2 = &ctx.ec2;

    let instance = ec2.describe_instance(&target.instance_id).await?;
    check_can_be_imaged(&instance)?;
    let name = image_name(args, &instance, started, ctx.printer)?;
    if let Some(existing) = ec2.own_images_named(&name).await?.first() {
        return Err(duplicate_name(&name, existing));
    }

    let spec = ImageSpec {
        instance_id: target.instance_id.clone(),
        name,
        description: args.description.as_ref().map(|d| d.as_str().to_owned()),
        no_reboot: args.no_reboot,
        image_tags: image_tags(&instance, args),
        snapshot_tags: args
            .snapshot_tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
    };
    announce_reboot(ctx.printer, args, target);
    let mut result = Created {
        image_id: None,
        name: spec.name.clone(),
        description: spec.description.clone(),
        instance_id: spec.instance_id.to_string(),
        no_reboot: spec.no_reboot,
        state: None,
        tags: spec.image_tags.clone(),
        snapshot_ids: Vec::new(),
        dry_run: args.dry_run,
    };

    if args.dry_run {
        ec2.create_image_dry_run(&spec).await?;
        ctx.printer
            .note("dry run: EC2 says the image can be created; nothing was created");
        return Ok(Outcome { result, failure: None });
    }

    let created = match ec2.create_image(&spec).await {
        Ok(Creation::Created(created)) => created,
        Ok(Creation::TakenOnRetry) => adopt_retried(ctx, &spec, started).await?,
        // Taken at the first try: someone else's image (an endpoint that checks names late).
        Err(err) if err.aws_code() == Some("InvalidAMIName.Duplicate") => {
            return Err(taken(ctx, &spec.name).await);
        }
        Err(err) => return Err(err),
    };
    let image_id = created.image_id.clone();
    result.image_id = Some(image_id.to_string());
    result.state = Some("pending".to_owned());

    // From here on the image exists: every failure is reported after printing its ID.
    let mut failure = None;
    if args.wait {
        match watch_image(ctx, &image_id, policy, |image| {
            image.state.as_deref() == Some("available")
        })
        .await
        {
            Ok(end) => {
                if let Some(image) = &end.image {
                    result.update_from(image);
                }
                failure = wait_failure(&result, &image_id, &end, policy.timeout);
            }
            Err(err) => failure = Some(err),
        }
    } else {
        match ec2.image(&image_id).await {
            Ok(Some(image)) => result.update_from(&image),
            Ok(None) => {}
            Err(err) => ctx.printer.warn(format!("could not read the new image back: {err}")),
        }
    }
    if failure.is_none() && !created.snapshot_tags_applied {
        failure = tag_snapshots_later(ctx, &mut result, &created, &spec.snapshot_tags)
            .await
            .err();
    }
    Ok(Outcome { result, failure })
}

/// AWS reserves tag keys that start with `aws:`.
fn check_tag_keys(args: &CreateArgs) -> Result<(), Error> {
    match args
        .tags
        .iter()
        .chain(&args.snapshot_tags)
        .find(|t| t.key.starts_with("aws:"))
    {
        Some(tag) => Err(Error::Usage(format!(
            "tag key '{}' starts with aws:, which AWS reserves for itself; choose another key",
            tag.key
        ))),
        None => Ok(()),
    }
}

/// `--name` with its placeholders filled in; without `--name`, the instance's Name tag (or
/// ID) and a timestamp, said on stderr.
fn image_name(args: &CreateArgs, instance: &Instance, now: Timestamp, printer: &Printer) -> Result<String, Error> {
    let default = if instance.name().is_some() {
        "{instance_name}-{timestamp}"
    } else {
        "{instance_id}-{timestamp}"
    };
    let template = match &args.name {
        Some(template) => template.clone(),
        None => default.parse().map_err(Error::Usage)?,
    };
    let name = template
        .expand(|placeholder| placeholder_value(placeholder, instance, now))
        .map_err(Error::Usage)?;
    if args.name.is_none() {
        printer.note(format!("image name: {name}"));
    }
    Ok(name)
}

/// Only an existing, EBS-backed instance can be imaged with CreateImage.
fn check_can_be_imaged(instance: &Instance) -> Result<(), Error> {
    let id = &instance.instance_id;
    if let Some(state @ ("terminated" | "shutting-down")) = instance.state.as_deref() {
        return Err(Error::Failed(format!(
            "instance {id} is {state}; only a pending, running or stopped instance can be imaged"
        )));
    }
    if instance.root_device_type.as_deref() == Some("instance-store") {
        return Err(Error::Failed(format!(
            "instance {id} is instance-store-backed: only EBS-backed instances can be imaged with CreateImage \
             (this is why the console's Create Image is greyed out for it); bundle its root volume to S3 and \
             register that with RegisterImage instead"
        )));
    }
    Ok(())
}

fn placeholder_value(placeholder: Placeholder, instance: &Instance, now: Timestamp) -> Result<String, String> {
    match placeholder {
        Placeholder::Date => Ok(now.strftime("%Y-%m-%d").to_string()),
        Placeholder::Timestamp => Ok(now.strftime("%Y%m%d-%H%M%S").to_string()),
        Placeholder::InstanceId => Ok(instance.instance_id.clone()),
        Placeholder::InstanceName => instance.name().map(str::to_owned).ok_or_else(|| {
            format!(
                "instance {} has no Name tag to fill {{instance_name}} with; use {{instance_id}} instead",
                instance.instance_id
            )
        }),
    }
}

fn duplicate_name(name: &str, existing: &Image) -> Error {
    Error::Failed(format!(
        "an image named '{name}' already exists: {}; nothing was created. Choose another --name (e.g. add {{timestamp}})",
        existing.image_id
    ))
}

/// `--copy-instance-tags` (without AWS's own `aws:` tags), then `--tag`, which wins.
fn image_tags(instance: &Instance, args: &CreateArgs) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    if args.copy_instance_tags {
        tags.extend(
            instance
                .tags
                .iter()
                .filter(|(key, _)| !key.starts_with("aws:"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    tags.extend(args.tags.iter().map(|t| (t.key.clone(), t.value.clone())));
    tags
}

/// Without `--yes`, a person at a terminal is asked before EC2 reboots the machine they are
/// on; anything else is refused with nothing sent.
fn confirm_rebooting_this_machine(id: &InstanceId) -> Result<(), Error> {
    let refusal = format!(
        "EC2 reboots the instance it images, and {id} is this very machine: pass --yes to let it reboot \
         (sessions on it will drop), or --no-reboot (the image's file-system integrity is then not guaranteed)"
    );
    if !output::can_ask() {
        return Err(Error::Usage(refusal));
    }
    match output::ask(&format!(
        "EC2 will reboot this very machine ({id}) to image it, and your session will drop. Go ahead?"
    )) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Usage("nothing was created".to_owned())),
        Err(err) => Err(Error::Usage(format!("could not read an answer ({err}); {refusal}"))),
    }
}

fn announce_reboot(printer: &Printer, args: &CreateArgs, target: &Target) {
    let id = &target.instance_id;
    let would = if args.dry_run { "would" } else { "will" };
    if args.no_reboot {
        let which = if target.this_machine {
            format!("this very machine ({id})")
        } else {
            format!("instance {id}")
        };
        printer.warn(format!(
            "--no-reboot: {which} keeps running while it is imaged, so the file-system integrity of the image is not guaranteed"
        ));
    } else if target.this_machine {
        printer.warn(format!(
            "EC2 {would} reboot this very machine ({id}) so that its file systems are consistent in the image; sessions on it will drop"
        ));
    } else {
        printer.note(format!(
            "EC2 {would} reboot instance {id} so that its file systems are consistent in the image (--no-reboot skips that)"
        ));
    }
}

/// The error for a name someone else's image has, naming that image where it is visible.
async fn taken(ctx: &Context<'_>, name: &str) -> Error {
    match ctx.ec2.own_images_named(name).await {
        Ok(images) => match images.first() {
            Some(existing) => duplicate_name(name, existing),
            None => not_visible(name),
        },
        Err(err) => err,
    }
}

fn not_visible(name: &str) -> Error {
    Error::Failed(format!(
        "EC2 says an image named '{name}' already exists, but it is not visible to this account; choose another --name"
    ))
}

/// CreateImage has no idempotency token: when the SDK retried a CreateImage whose first try
/// did succeed, the retry meets the image that try made. Only then (see
/// [`Creation::TakenOnRetry`]) is an image adopted: same name, same instance, seconds old.
async fn adopt_retried(ctx: &Context<'_>, spec: &ImageSpec, started: Timestamp) -> Result<CreatedImage, Error> {
    let images = ctx.ec2.own_images_named(&spec.name).await?;
    let since = started - SignedDuration::from_mins(2);
    let ours = images.iter().find(|image| {
        image.source_instance_id.as_deref() == Some(spec.instance_id.as_str())
            && image.creation_date.is_some_and(|created| created >= since)
    });
    match ours {
        Some(image) => {
            ctx.printer.note(format!(
                "CreateImage was retried and met the image its first try made: {}",
                image.image_id
            ));
            Ok(CreatedImage {
                image_id: image.image_id.parse().map_err(Error::Failed)?,
                // Whether the first try tagged the snapshots is unknown; tagging is idempotent.
                snapshot_tags_applied: spec.snapshot_tags.is_empty(),
            })
        }
        None => Err(match images.first() {
            Some(existing) => duplicate_name(&spec.name, existing),
            None => not_visible(&spec.name),
        }),
    }
}

/// Tags the snapshots with CreateTags, for endpoints that refused snapshot tags at creation.
async fn tag_snapshots_later(
    ctx: &Context<'_>,
    result: &mut Created,
    created: &CreatedImage,
    tags: &BTreeMap<String, String>,
) -> Result<(), Error> {
    if result.snapshot_ids.is_empty() {
        let policy = WaitPolicy::with_timeout(SNAPSHOT_IDS_TIMEOUT);
        let end = watch_image(ctx, &created.image_id, policy, |image| !image.snapshot_ids.is_empty()).await?;
        if let Some(image) = &end.image {
            result.update_from(image);
        }
        if end.how == Ending::TimedOut {
            return Err(Error::Failed(format!(
                "the snapshots of image {id} were not known within {}, so --snapshot-tag was not applied; \
                 tag them once they show in `amictl describe {id}`",
                elapsed(SNAPSHOT_IDS_TIMEOUT),
                id = created.image_id,
            )));
        }
        if let Some(failure) = wait_failure(result, &created.image_id, &end, SNAPSHOT_IDS_TIMEOUT) {
            return Err(failure);
        }
    }
    ctx.ec2.tag_resources(&result.snapshot_ids, tags).await
}

/// How a wait ended, with the image as last seen.
struct WaitEnd {
    how: Ending,
    image: Option<Image>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Done,
    Failed,
    TimedOut,
    Interrupted,
}

/// Looks at the image until `done` says so, it fails, time runs out, or the user presses
/// Ctrl-C; with a progress line on stderr.
async fn watch_image(
    ctx: &Context<'_>,
    id: &ImageId,
    policy: WaitPolicy,
    done: impl Fn(&Image) -> bool,
) -> Result<WaitEnd, Error> {
    let start = Instant::now();
    let mut progress = ctx.printer.progress();
    let mut interval = policy.first_poll;
    let mut last: Option<Image> = None;
    // The first Ctrl-C ends the wait (EC2 goes on); a second quits at once.
    let _handling = ctx.interrupt.handle();
    let end = loop {
        let looked = tokio::select! {
            looked = ctx.ec2.image(id) => looked,
            () = ctx.interrupt.stopped() => break Ending::Interrupted,
        };
        match looked {
            Ok(Some(image)) => {
                let state = image.state.clone().unwrap_or_else(|| "unknown".to_owned());
                progress.update(
                    &state,
                    &format!("waiting for {id}: {state}, {}", elapsed(start.elapsed())),
                );
                let how = if matches!(state.as_str(), "failed" | "error" | "invalid" | "deregistered") {
                    Some(Ending::Failed)
                } else if done(&image) {
                    Some(Ending::Done)
                } else {
                    None
                };
                last = Some(image);
                if let Some(how) = how {
                    break how;
                }
            }
            Ok(None) if start.elapsed() < policy.not_found_grace => {
                progress.update(
                    "not visible yet",
                    &format!("waiting for {id} to show up, {}", elapsed(start.elapsed())),
                );
            }
            Ok(None) => {
                progress.finish();
                return Err(Error::NotFound {
                    what: format!("image {id}, created moments ago,"),
                    region: ctx.ec2.region().to_owned(),
                });
            }
            Err(err) => {
                progress.finish();
                return Err(err);
            }
        }
        let remaining = policy.timeout.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            break Ending::TimedOut;
        }
        tokio::select! {
            () = tokio::time::sleep(interval.min(remaining)) => {}
            () = ctx.interrupt.stopped() => break Ending::Interrupted,
        }
        interval = (interval * 2).min(policy.max_poll);
    };
    progress.finish();
    Ok(WaitEnd { how: end, image: last })
}

/// The error a wait that did not end in `done` exits with, after the result is printed.
fn wait_failure(result: &Created, id: &ImageId, end: &WaitEnd, timeout: Duration) -> Option<Error> {
    let state = result.state.as_deref().unwrap_or("unknown");
    match end.how {
        Ending::Done => None,
        Ending::Failed => {
            let reason = end
                .image
                .as_ref()
                .and_then(|image| image.state_reason.as_deref())
                .unwrap_or("EC2 gave no reason");
            Some(Error::Failed(format!("image {id} is {state}: {reason}")))
        }
        Ending::TimedOut => Some(Error::Failed(format!(
            "gave up waiting for image {id} after {} (state {state}); EC2 goes on creating it: check with `amictl describe {id}`",
            elapsed(timeout)
        ))),
        Ending::Interrupted => Some(Error::Interrupted(format!(
            "interrupted: EC2 goes on creating image {id} without amictl; check it with `amictl describe {id}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    //! What moto can't show: instance-store instances (moto's are all EBS-backed), images
    //! that fail or stay pending (moto's are available at once), and EC2's duplicate-name
    //! answer (moto never checks names).

    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::create_image::{CreateImageError, CreateImageOutput};
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::types as sdk;
    use aws_smithy_mocks::{Rule, RuleMode, mock};
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::ec2::mock::{aws_error, mock_ec2};

    const INSTANCE: &str = "i-0123456789abcdef0";
    const IMAGE: &str = "ami-0123456789abcdef0";

    fn args(extra: &[&str]) -> CreateArgs {
        let cli = Cli::try_parse_from(
            ["amictl", "create", "--instance-id", INSTANCE, "--name", "web-1"]
                .iter()
                .chain(extra),
        )
        .expect("valid arguments");
        match cli.command {
            Command::Create(args) => args,
            _ => unreachable!("parsed a create command"),
        }
    }

    fn target() -> Target {
        Target {
            instance_id: INSTANCE.parse().unwrap(),
            this_machine: false,
        }
    }

    fn context(rules: &[&Rule]) -> Context<'static> {
        Context::for_tests(mock_ec2(RuleMode::MatchAny, rules))
    }

    fn fast_policy() -> WaitPolicy {
        WaitPolicy {
            timeout: Duration::from_millis(200),
            first_poll: Duration::from_millis(1),
            max_poll: Duration::from_millis(5),
            not_found_grace: Duration::from_millis(50),
        }
    }

    fn instance(root_device: sdk::DeviceType) -> Rule {
        mock!(Client::describe_instances).then_output(move || {
            DescribeInstancesOutput::builder()
                .reservations(
                    sdk::Reservation::builder()
                        .instances(
                            sdk::Instance::builder()
                                .instance_id(INSTANCE)
                                .state(
                                    sdk::InstanceState::builder()
                                        .name(sdk::InstanceStateName::Running)
                                        .build(),
                                )
                                .root_device_type(root_device.clone())
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    fn image(id: &str, state: &str, created: Timestamp) -> sdk::Image {
        sdk::Image::builder()
            .image_id(id)
            .name("web-1")
            .state(sdk::ImageState::from(state))
            .source_instance_id(INSTANCE)
            .creation_date(created.to_string())
            .state_reason(sdk::StateReason::builder().message("snapshot copy failed").build())
            .build()
    }

    /// Own images named `web-1` (the duplicate check): none.
    fn no_image_named() -> Rule {
        mock!(Client::describe_images)
            .match_requests(|req| req.image_ids().is_empty())
            .then_output(|| DescribeImagesOutput::builder().build())
    }

    /// EC2's answer to CreateImage when the name is taken.
    fn duplicate_name_answer() -> Rule {
        mock!(Client::create_image).then_error(duplicate_name_error)
    }

    fn duplicate_name_error() -> CreateImageError {
        CreateImageError::generic(aws_error(
            "InvalidAMIName.Duplicate",
            "AMI name web-1 is already in use",
        ))
    }

    /// The first try's answer is lost (a 500), the SDK tries again, and EC2 answers that the
    /// name is taken: by the image the first try made.
    fn duplicate_name_on_retry() -> Rule {
        mock!(Client::create_image)
            .sequence()
            .http_response(|| {
                aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(500).unwrap(),
                    aws_smithy_types::body::SdkBody::from(
                        "<Response><Errors><Error><Code>InternalError</Code><Message>lost</Message></Error></Errors></Response>",
                    ),
                )
            })
            .error(duplicate_name_error)
            .build()
    }

    fn created() -> Rule {
        mock!(Client::create_image).then_output(|| CreateImageOutput::builder().image_id(IMAGE).build())
    }

    #[tokio::test]
    async fn an_instance_store_instance_is_refused_before_creating() {
        let create_image = created();
        let ctx = context(&[
            &instance(sdk::DeviceType::InstanceStore),
            &no_image_named(),
            &create_image,
        ]);

        let err = create(&ctx, &args(&[]), &target(), fast_policy())
            .await
            .err()
            .expect("refused");

        assert!(matches!(err, Error::Failed(_)), "{err:?}");
        assert!(
            err.to_string().contains("only EBS-backed instances can be imaged"),
            "{err}"
        );
        assert_eq!(create_image.num_calls(), 0, "nothing was created");
    }

    #[tokio::test]
    async fn an_image_that_fails_while_waiting_exits_1_with_its_reason_and_id() {
        let lookups = mock!(Client::describe_images)
            .match_requests(|req| !req.image_ids().is_empty())
            .sequence()
            .output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "pending", Timestamp::now()))
                    .build()
            })
            .output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "failed", Timestamp::now()))
                    .build()
            })
            .build();
        let ctx = context(&[&instance(sdk::DeviceType::Ebs), &no_image_named(), &created(), &lookups]);

        let outcome = create(&ctx, &args(&["--wait"]), &target(), fast_policy())
            .await
            .expect("created");

        assert_eq!(outcome.result.image_id.as_deref(), Some(IMAGE));
        assert_eq!(outcome.result.state.as_deref(), Some("failed"));
        let failure = outcome.failure.expect("a failed wait is a failure");
        assert_eq!(failure.exit_code(), 1);
        assert_eq!(
            failure.to_string(),
            format!("image {IMAGE} is failed: snapshot copy failed")
        );
    }

    #[tokio::test]
    async fn a_wait_that_times_out_exits_1_and_still_gives_the_image_id() {
        let pending = mock!(Client::describe_images)
            .match_requests(|req| !req.image_ids().is_empty())
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "pending", Timestamp::now()))
                    .build()
            });
        let ctx = context(&[&instance(sdk::DeviceType::Ebs), &no_image_named(), &created(), &pending]);

        let outcome = create(&ctx, &args(&["--wait"]), &target(), fast_policy())
            .await
            .expect("created");

        assert_eq!(outcome.result.image_id.as_deref(), Some(IMAGE));
        assert_eq!(outcome.result.state.as_deref(), Some("pending"));
        let failure = outcome.failure.expect("a timeout is a failure").to_string();
        assert!(
            failure.starts_with(&format!("gave up waiting for image {IMAGE}")),
            "{failure}"
        );
        assert!(failure.contains("EC2 goes on creating it"), "{failure}");
        assert!(pending.num_calls() >= 2, "it polled more than once");
    }

    #[tokio::test]
    async fn a_retried_create_image_that_meets_its_own_image_reports_that_image() {
        let duplicate = duplicate_name_on_retry();
        // The duplicate check before creating saw nothing; the look after the error sees the
        // image the first (lost) try made, seconds ago, from this instance.
        let named = mock!(Client::describe_images)
            .match_requests(|req| req.image_ids().is_empty())
            .sequence()
            .output(|| DescribeImagesOutput::builder().build())
            .output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "pending", Timestamp::now()))
                    .build()
            })
            .build();
        let lookup = mock!(Client::describe_images)
            .match_requests(|req| !req.image_ids().is_empty())
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "pending", Timestamp::now()))
                    .build()
            });
        let ctx = context(&[&instance(sdk::DeviceType::Ebs), &named, &lookup, &duplicate]);

        let outcome = create(&ctx, &args(&[]), &target(), fast_policy())
            .await
            .expect("adopted");

        assert_eq!(outcome.result.image_id.as_deref(), Some(IMAGE));
        assert!(outcome.failure.is_none());
    }

    #[tokio::test]
    async fn a_concurrent_run_s_image_of_the_same_name_is_never_adopted() {
        // Another pipeline made `web-1` from the same instance seconds ago; this run's one and
        // only CreateImage is told the name is taken: an error, not that image.
        let duplicate = duplicate_name_answer();
        let named = mock!(Client::describe_images)
            .match_requests(|req| req.image_ids().is_empty())
            .sequence()
            .output(|| DescribeImagesOutput::builder().build())
            .output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "pending", Timestamp::now()))
                    .build()
            })
            .build();
        let ctx = context(&[&instance(sdk::DeviceType::Ebs), &named, &duplicate]);

        let err = create(&ctx, &args(&[]), &target(), fast_policy())
            .await
            .err()
            .expect("not adopted");

        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(duplicate.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_duplicate_made_by_someone_else_is_an_error_naming_it() {
        let old = "ami-0fedcba9876543210";
        let duplicate = duplicate_name_answer();
        let named = mock!(Client::describe_images)
            .match_requests(|req| req.image_ids().is_empty())
            .sequence()
            .output(|| DescribeImagesOutput::builder().build())
            .output(move || {
                let last_year = Timestamp::now() - SignedDuration::from_hours(24 * 365);
                DescribeImagesOutput::builder()
                    .images(image(old, "available", last_year))
                    .build()
            })
            .build();
        let ctx = context(&[&instance(sdk::DeviceType::Ebs), &named, &duplicate]);

        let err = create(&ctx, &args(&[]), &target(), fast_policy())
            .await
            .err()
            .expect("a duplicate");

        assert!(err.to_string().contains(old), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[test]
    fn copied_instance_tags_leave_out_aws_ones_and_yield_to_explicit_tags() {
        let instance = Instance {
            instance_id: INSTANCE.to_owned(),
            state: Some("running".to_owned()),
            root_device_type: Some("ebs".to_owned()),
            tags: [("Name", "web"), ("team", "old"), ("aws:cloudformation:stack-name", "s")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };

        let tags = image_tags(&instance, &args(&["--copy-instance-tags", "--tag", "team=web"]));

        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tags, [("Name", "web"), ("team", "web")]);
    }
}
