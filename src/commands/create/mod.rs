//! `amictl create`: an AMI from an EBS-backed instance, safe to run from CI.
//!
//! Checks before creating (the instance exists, can be imaged, the name is free), creates with
//! tags in the same request, and optionally waits. The result is printed even when waiting
//! fails, so that a pipeline always learns the new image's ID.
//!
//! The name and tags are made in `naming`, a taken name is told apart from this run's own
//! retried creation in `adoption`, the reboot is announced (or asked) in `reboot`; the wait
//! itself is the service layer's (`Ec2::watch_image`).

mod adoption;
mod naming;
mod reboot;

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::Table;
use serde::Serialize;

use super::{Context, Reach, Waiting, copy, publish};
use crate::ec2::{CreatedImage, Creation, Ending, ImageSpec, ThisInstance, WaitEnd, WaitPolicy};
use crate::error::Error;
use crate::model::{Image, ImageState, Instance};
use crate::output::{Printer, Render, elapsed, yes_no};
use crate::types::{DeprecateIn, ImageId, InstanceId, NameTemplate, Region, SnapshotId, Tag};
use adoption::{adopt_retried, duplicate_name, taken};
use naming::{image_name, image_tags};
use reboot::{announce_reboot, confirm_rebooting_this_machine};

/// How long to look for the snapshot IDs of an image when they must be tagged afterwards.
const SNAPSHOT_IDS_TIMEOUT: Duration = Duration::from_mins(2);

/// What `create` was asked (`crate::settings` fills it from the command line, checked).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `None`: the machine amictl runs on.
    pub instance_id: Option<InstanceId>,
    /// `None`: the instance's Name tag (or ID) and a timestamp.
    pub name: Option<NameTemplate>,
    pub description: Option<String>,
    pub reboot: Reboot,
    pub tags: Vec<Tag>,
    pub snapshot_tags: Vec<Tag>,
    pub copy_instance_tags: bool,
    pub copy_to_regions: Vec<Region>,
    pub deprecate_in: Option<DeprecateIn>,
    pub waiting: Waiting,
    /// What the image, and each copy, is published to once available.
    pub publish: publish::Request,
    pub dry_run: bool,
}

/// Whether EC2 reboots the instance while imaging it (for consistent file systems).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reboot {
    /// It does; the machine amictl runs on only after a yes at the terminal.
    #[default]
    Yes,
    /// It does, this very machine too, without asking (`--yes`).
    YesEvenThisMachine,
    /// `--no-reboot`: no downtime, no guaranteed file-system integrity.
    No,
}

/// The instance to image: named with `--instance-id`, or the machine amictl runs on.
#[derive(Debug, Clone)]
pub struct Target {
    pub instance_id: InstanceId,
    /// Found through the instance metadata service: imaging it may reboot this very machine.
    pub this_machine: bool,
}

impl Target {
    pub fn new(args: &Settings, this_instance: Option<&ThisInstance>) -> Option<Target> {
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

pub async fn run(reach: &Reach<'_>, args: &Settings, target: Target) -> anyhow::Result<()> {
    let ctx = &reach.home();
    if args.dry_run && !args.copy_to_regions.is_empty() {
        ctx.printer
            .note("dry run: the copies to other regions are not asked about (the image they copy does not exist)");
    }
    if args.dry_run && !args.publish.is_empty() {
        ctx.printer.note(
            "dry run: nothing is published (there is no image); `amictl publish IMAGE --dry-run` shows it for one",
        );
    }
    let mut outcome = create(ctx, args, &target, WaitPolicy::with_timeout(args.waiting.timeout)).await?;
    if let (Some(id), None, false) = (
        &outcome.result.image_id,
        &outcome.failure,
        args.copy_to_regions.is_empty(),
    ) {
        // The image is available (creating it waited): copy it as it is.
        let mut request = copy::Request::after_create(
            id.parse().map_err(Error::Failed)?,
            args.copy_to_regions.clone(),
            outcome.result.snapshot_tags.clone(),
            args.waiting,
        );
        request.publish = args.publish.clone();
        match copy::copy(reach, ctx, &request).await {
            Ok(copies) => {
                outcome.failure = copies.failure();
                outcome.result.copies = copies.rows;
            }
            Err(err) => {
                outcome.failure = Some(Error::Failed(format!(
                    "image {id} was created, but could not be copied ({err}); copy it with `amictl copy {id} --to-regions …`"
                )));
            }
        }
    }
    publish_here(ctx, args, &mut outcome).await?;
    ctx.printer.print(&outcome.result)?;
    match outcome.failure {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}

/// Publishes the image, once available, in its own region (the copies publish theirs).
async fn publish_here(ctx: &Context<'_>, args: &Settings, outcome: &mut Outcome) -> Result<(), Error> {
    let available = outcome.result.state.as_ref().is_some_and(ImageState::is_launchable);
    let Some(id) = outcome
        .result
        .image_id
        .as_ref()
        .filter(|_| available && !args.publish.is_empty())
    else {
        return Ok(());
    };
    let rows = publish::in_region(ctx, &args.publish, Ok(id.parse().map_err(Error::Failed)?)).await;
    let failed = publish::failure(&rows);
    outcome.result.published = rows;
    outcome.failure = match (outcome.failure.take(), failed) {
        (Some(first), Some(then)) => Some(Error::Failed(format!("{first}; {then}"))),
        (first, then) => first.or(then),
    };
    Ok(())
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
    state: Option<ImageState>,
    tags: BTreeMap<String, String>,
    snapshot_ids: Vec<SnapshotId>,
    /// When EC2 deprecates it (`--deprecate-in`).
    deprecation_time: Option<jiff::Timestamp>,
    dry_run: bool,
    /// Its copies in other regions (`--copy-to-regions`), as `amictl copy` reports them.
    copies: Vec<copy::CopyRow>,
    /// What it was published to in its own region (`--ssm-parameter`, `--launch-template`).
    published: Vec<publish::Published>,
    /// The snapshot tags asked for, which the copies' snapshots get too.
    #[serde(skip)]
    snapshot_tags: BTreeMap<String, String>,
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
            self.state.as_ref().map_or("-", ImageState::as_str),
        ]);
        let mut tables = vec![table];
        if !self.published.is_empty() {
            tables.push(publish::table(&self.published, printer));
        }
        tables.extend(copy::copy_tables(&self.copies, printer));
        tables
    }
}

async fn create(ctx: &Context<'_>, args: &Settings, target: &Target, policy: WaitPolicy) -> Result<Outcome, Error> {
    if target.this_machine && args.reboot == Reboot::Yes && !args.dry_run {
        confirm_rebooting_this_machine(ctx.printer, &target.instance_id).await?;
    }
    let started = ctx.now;
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
        description: args.description.clone(),
        no_reboot: args.reboot == Reboot::No,
        image_tags: image_tags(&instance, args),
        snapshot_tags: Tag::map(&args.snapshot_tags),
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
        deprecation_time: None,
        dry_run: args.dry_run,
        copies: Vec::new(),
        published: Vec::new(),
        snapshot_tags: spec.snapshot_tags.clone(),
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
    result.state = Some(ImageState::Pending);

    // From here on the image exists: every failure is reported after printing its ID.
    let failure = follow_up(ctx, args, policy, &created, &spec, &mut result).await;
    Ok(Outcome { result, failure })
}

/// After CreateImage: waits where asked (or reads the image back), schedules the deprecation,
/// tags the snapshots where EC2 did not; the first thing that failed.
async fn follow_up(
    ctx: &Context<'_>,
    args: &Settings,
    policy: WaitPolicy,
    created: &CreatedImage,
    spec: &ImageSpec,
    result: &mut Created,
) -> Option<Error> {
    let ec2 = &ctx.ec2;
    let image_id = &created.image_id;
    let mut failure = None;
    // Copying to other regions needs the image available: creating it waits for that.
    if args.waiting.wait || !args.copy_to_regions.is_empty() || !args.publish.is_empty() {
        match watch_image(ctx, image_id, policy, |image| {
            image.state.as_ref().is_some_and(ImageState::is_launchable)
        })
        .await
        {
            Ok(end) => {
                if let Some(image) = &end.image {
                    result.update_from(image);
                }
                failure = wait_failure(result, image_id, &end, policy.timeout);
            }
            Err(err) => failure = Some(err),
        }
    } else {
        match ec2.image(image_id).await {
            Ok(Some(image)) => result.update_from(&image),
            Ok(None) => {}
            Err(err) => ctx.printer.warn(format!("could not read the new image back: {err}")),
        }
    }
    if let (None, Some(lead)) = (&failure, args.deprecate_in) {
        let at = lead.from(ctx.now);
        match ec2.set_deprecation(image_id, Some(at)).await {
            Ok(()) => result.deprecation_time = Some(crate::types::deprecation_as_kept(at)),
            Err(err) => {
                failure = Some(Error::Failed(format!(
                    "image {image_id} was created, but its deprecation could not be scheduled ({err}); schedule it with `amictl deprecate {image_id} --in …`"
                )));
            }
        }
    }
    if failure.is_none() && !created.snapshot_tags_applied {
        failure = tag_snapshots_later(ctx, result, created, &spec.snapshot_tags)
            .await
            .err();
    }
    failure
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
    ctx.ec2.tag_snapshots(&result.snapshot_ids, tags).await
}

/// The error a wait that did not end in `done` exits with, after the result is printed.
fn wait_failure(result: &Created, id: &ImageId, end: &WaitEnd, timeout: Duration) -> Option<Error> {
    let state = result.state.as_ref().map_or("unknown", ImageState::as_str);
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

/// Waits on the image with a progress line on stderr; the first Ctrl-C ends the wait (EC2 goes
/// on creating the image), a second quits at once.
async fn watch_image(
    ctx: &Context<'_>,
    id: &ImageId,
    policy: WaitPolicy,
    done: impl Fn(&Image) -> bool,
) -> Result<WaitEnd, Error> {
    let _handling = ctx.interrupt.handle();
    let mut progress = ctx.printer.progress();
    let end = ctx
        .ec2
        .watch_image(id, policy, done, ctx.interrupt.stopped(), |look, since| {
            let (state, message) = super::waiting_text(id, look, since);
            progress.update(state, &message);
        })
        .await;
    progress.finish();
    end
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

    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::ec2::mock::{aws_error, mock_ec2};

    const INSTANCE: &str = "i-0123456789abcdef0";
    const IMAGE: &str = "ami-0123456789abcdef0";

    /// `create --instance-id INSTANCE --name web-1`, as settings.
    fn args() -> Settings {
        Settings {
            instance_id: Some(INSTANCE.parse().unwrap()),
            name: Some("web-1".parse().unwrap()),
            ..Settings::default()
        }
    }

    fn waiting() -> Settings {
        Settings {
            waiting: Waiting {
                wait: true,
                ..Waiting::default()
            },
            ..args()
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
    /// Own images named `web-1`: none at the duplicate check before creating; after EC2 said
    /// the name is taken, one seconds old from this instance, still pending.
    fn unseen_then_pending() -> Rule {
        mock!(Client::describe_images)
            .match_requests(|req| req.image_ids().is_empty())
            .sequence()
            .output(|| DescribeImagesOutput::builder().build())
            .output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "pending", Timestamp::now()))
                    .build()
            })
            .build()
    }

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

        let err = create(&ctx, &args(), &target(), fast_policy())
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

        let outcome = create(&ctx, &waiting(), &target(), fast_policy())
            .await
            .expect("created");

        assert_eq!(outcome.result.image_id.as_deref(), Some(IMAGE));
        assert_eq!(outcome.result.state, Some(ImageState::Failed));
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

        let outcome = create(&ctx, &waiting(), &target(), fast_policy())
            .await
            .expect("created");

        assert_eq!(outcome.result.image_id.as_deref(), Some(IMAGE));
        assert_eq!(outcome.result.state, Some(ImageState::Pending));
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
        let named = unseen_then_pending();
        let lookup = mock!(Client::describe_images)
            .match_requests(|req| !req.image_ids().is_empty())
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(image(IMAGE, "pending", Timestamp::now()))
                    .build()
            });
        let ctx = context(&[&instance(sdk::DeviceType::Ebs), &named, &lookup, &duplicate]);

        let outcome = create(&ctx, &args(), &target(), fast_policy()).await.expect("adopted");

        assert_eq!(outcome.result.image_id.as_deref(), Some(IMAGE));
        assert!(outcome.failure.is_none());
    }

    #[tokio::test]
    async fn a_concurrent_run_s_image_of_the_same_name_is_never_adopted() {
        // Another pipeline made `web-1` from the same instance seconds ago; this run's one and
        // only CreateImage is told the name is taken: an error, not that image.
        let duplicate = duplicate_name_answer();
        let named = unseen_then_pending();
        let ctx = context(&[&instance(sdk::DeviceType::Ebs), &named, &duplicate]);

        let err = create(&ctx, &args(), &target(), fast_policy())
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

        let err = create(&ctx, &args(), &target(), fast_policy())
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

        let tags = image_tags(
            &instance,
            &Settings {
                copy_instance_tags: true,
                tags: vec!["team=web".parse().unwrap()],
                ..args()
            },
        );

        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tags, [("Name", "web"), ("team", "web")]);
    }
}
