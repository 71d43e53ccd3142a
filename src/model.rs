//! amictl's own view of EC2's resources. The service layer (`ec2`) builds these from SDK
//! types; everything above it works with these alone. They serialize as the JSON output.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::types::{AccountId, ImageId, Region, SnapshotId};

/// How an image's root device is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backing {
    /// Root device is an EBS volume made from a snapshot.
    Ebs,
    /// Root device is made from a template stored in S3.
    InstanceStore,
    /// The endpoint said neither, and the block device mappings don't tell.
    Unknown,
}

impl std::str::FromStr for Backing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ebs" => Ok(Backing::Ebs),
            "instance-store" => Ok(Backing::InstanceStore),
            _ => Err(format!("'{s}' is not a backing: expected ebs or instance-store")),
        }
    }
}

impl Backing {
    /// What a user may ask for.
    pub const CHOICES: &[&str] = &["ebs", "instance-store"];

    pub fn as_str(self) -> &'static str {
        match self {
            Backing::Ebs => "ebs",
            Backing::InstanceStore => "instance-store",
            Backing::Unknown => "unknown",
        }
    }

    /// What the backing means for someone launching the image.
    pub fn explanation(self) -> &'static str {
        match self {
            Backing::Ebs => {
                "EBS-backed: the root device is an EBS volume made from a snapshot; instances \
                 usually boot in under a minute; the root volume is deleted on termination unless \
                 it is set to be kept"
            }
            Backing::InstanceStore => {
                "instance-store-backed: the root device is made from a template in S3; instances \
                 boot in up to about 5 minutes; the root device is limited to 10 GiB"
            }
            Backing::Unknown => "the endpoint did not say how the root device is stored",
        }
    }
}

/// An image's state as EC2 reports it (DescribeImages `State`), parsed once where the
/// service layer reads it. The one definition of which states are launchable, on their way
/// somewhere (transient) and failed. A state this version doesn't know is kept as EC2 said it
/// and is none of those: amictl doesn't act on what it can't read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum ImageState {
    Pending,
    Available,
    Invalid,
    Deregistered,
    Transient,
    Failed,
    Error,
    Disabled,
    Other(String),
}

impl ImageState {
    pub fn parse(state: &str) -> ImageState {
        match state {
            "pending" => ImageState::Pending,
            "available" => ImageState::Available,
            "invalid" => ImageState::Invalid,
            "deregistered" => ImageState::Deregistered,
            "transient" => ImageState::Transient,
            "failed" => ImageState::Failed,
            "error" => ImageState::Error,
            "disabled" => ImageState::Disabled,
            other => ImageState::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ImageState::Pending => "pending",
            ImageState::Available => "available",
            ImageState::Invalid => "invalid",
            ImageState::Deregistered => "deregistered",
            ImageState::Transient => "transient",
            ImageState::Failed => "failed",
            ImageState::Error => "error",
            ImageState::Disabled => "disabled",
            ImageState::Other(other) => other,
        }
    }

    /// Instances can launch from it.
    pub fn is_launchable(&self) -> bool {
        *self == ImageState::Available
    }

    /// On its way to another state (being made, copied or changed): wait, don't judge.
    pub fn is_transient(&self) -> bool {
        matches!(self, ImageState::Pending | ImageState::Transient)
    }

    /// It will never become available: a failed creation or copy.
    pub fn is_failed(&self) -> bool {
        matches!(self, ImageState::Failed | ImageState::Error | ImageState::Invalid)
    }

    /// Waiting for it ends here without it becoming available: failed, or gone.
    pub fn is_dead_end(&self) -> bool {
        self.is_failed() || *self == ImageState::Deregistered
    }
}

impl From<String> for ImageState {
    fn from(state: String) -> ImageState {
        ImageState::parse(&state)
    }
}

impl From<ImageState> for String {
    fn from(state: ImageState) -> String {
        state.as_str().to_owned()
    }
}

impl std::fmt::Display for ImageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image's place on the way out: disabled, deprecated, deprecating (a deprecation time to
/// come), else its state. Shown as that word (`-` where EC2 gave no state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Stage {
    Disabled,
    Deprecated,
    Deprecating,
    State(ImageState),
    Unknown,
}

impl Stage {
    pub fn as_str(&self) -> &str {
        match self {
            Stage::Disabled => "disabled",
            Stage::Deprecated => "deprecated",
            Stage::Deprecating => "deprecating",
            Stage::State(state) => state.as_str(),
            Stage::Unknown => "-",
        }
    }
}

impl From<Stage> for String {
    fn from(stage: Stage) -> String {
        stage.as_str().to_owned()
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot's state (DescribeSnapshots `State`); only `completed` is whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
    Other(String),
}

impl SnapshotState {
    pub fn parse(state: &str) -> SnapshotState {
        match state {
            "pending" => SnapshotState::Pending,
            "completed" => SnapshotState::Completed,
            "error" => SnapshotState::Error,
            other => SnapshotState::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Error => "error",
            SnapshotState::Other(other) => other,
        }
    }
}

impl From<SnapshotState> for String {
    fn from(state: SnapshotState) -> String {
        state.as_str().to_owned()
    }
}

/// One entry of an image's block device mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockDevice {
    pub device_name: Option<String>,
    pub snapshot_id: Option<SnapshotId>,
    pub volume_size_gib: Option<i64>,
    pub volume_type: Option<String>,
    pub encrypted: Option<bool>,
    /// The KMS key (an ARN, as EC2 reports it) its snapshot is encrypted with.
    pub kms_key_id: Option<String>,
    pub delete_on_termination: Option<bool>,
    /// Instance-store volumes (`ephemeral0` …) have a virtual name instead of a snapshot.
    pub virtual_name: Option<String>,
}

impl BlockDevice {
    pub fn is_ebs(&self) -> bool {
        self.snapshot_id.is_some() || self.volume_size_gib.is_some() || self.volume_type.is_some()
    }
}

/// An AMI as amictl shows it. Field names are the JSON output's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Image {
    pub image_id: ImageId,
    /// The region the image lives in.
    pub region: Region,
    /// The account it was found in, when amictl works through `--role-arn`.
    pub account_id: Option<AccountId>,
    /// That account's name, where the organization gives it (`--org`).
    pub account_name: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub state: Option<ImageState>,
    pub owner_id: Option<String>,
    pub creation_date: Option<Timestamp>,
    pub backing: Backing,
    pub root_device_name: Option<String>,
    pub architecture: Option<String>,
    pub public: Option<bool>,
    pub block_devices: Vec<BlockDevice>,
    /// Sum of the EBS volume sizes.
    pub size_gib: i64,
    pub snapshot_ids: Vec<SnapshotId>,
    pub tags: BTreeMap<String, String>,
    pub deprecation_time: Option<Timestamp>,
    /// The instance the image was made from, where the endpoint says.
    pub source_instance_id: Option<String>,
    /// For a copy: the image it was copied from, and that image's region, as EC2 reports them.
    pub source_image_id: Option<String>,
    pub source_image_region: Option<String>,
    /// Why the image is in its state (e.g. why it `failed`).
    pub state_reason: Option<String>,
    /// `disabled`, or how it is enabled (an image with it on can't be deregistered), as EC2
    /// says it.
    pub deregistration_protection: Option<String>,
    /// When an instance was last launched from it (EC2 reports launches up to a day late).
    pub last_launched_time: Option<Timestamp>,
}

impl Image {
    /// Whether the name matches the glob (`None`: any name, or none at all).
    pub fn name_matches(&self, glob: Option<&crate::types::NameGlob>) -> bool {
        glob.is_none_or(|glob| self.name.as_deref().is_some_and(|n| glob.is_match(n)))
    }

    /// The account the image is in: the assumed role's (`--role-arn`), else its owner.
    pub fn account(&self) -> Option<&str> {
        self.account_id
            .as_ref()
            .map(AccountId::as_str)
            .or(self.owner_id.as_deref())
    }

    /// Whether the image has this tag, with this value.
    pub fn has_tag(&self, tag: &crate::types::Tag) -> bool {
        self.tags.get(&tag.key) == Some(&tag.value)
    }

    /// Newest first, the one order every list and `--keep` use: by creation date (an image
    /// without one counts as oldest), then, among images of the same second, by name (the
    /// later build stamp first), then by ID, so that every run decides the same way.
    pub fn newest_first(a: &Image, b: &Image) -> std::cmp::Ordering {
        b.creation_date
            .cmp(&a.creation_date)
            .then_with(|| match (&a.name, &b.name) {
                (Some(a), Some(b)) => natural_order(b, a),
                (a, b) => b.cmp(a),
            })
            .then_with(|| a.image_id.cmp(&b.image_id))
    }

    /// Deregistration protection as of `now`. EC2 says `disabled`, `enabled-without-cooldown`
    /// or `enabled-with-cooldown`, and after protection with a cooldown is turned off,
    /// `disabled-until` and when the cooldown ends (that form is what amictl expects; it is not
    /// verified against real EC2, which the API reference doesn't spell out). A value amictl
    /// can't read counts as on:
    /// what it can't check it doesn't assume safe.
    pub fn protection(&self, now: Timestamp) -> Protection {
        let Some(value) = self
            .deregistration_protection
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Protection::Off;
        };
        if value == "disabled" {
            return Protection::Off;
        }
        if let Some(until) = value.strip_prefix("disabled-until") {
            return match until.trim().parse::<Timestamp>() {
                Ok(until) if until > now => Protection::CoolingDown(until),
                Ok(_) => Protection::Off,
                Err(_) => Protection::Unreadable(value.to_owned()),
            };
        }
        match value {
            "enabled" | "enabled-without-cooldown" => Protection::On { cooldown: false },
            "enabled-with-cooldown" => Protection::On { cooldown: true },
            other => Protection::Unreadable(other.to_owned()),
        }
    }

    /// Whether EC2's deprecation time for the image has come.
    pub fn is_deprecated(&self, now: Timestamp) -> bool {
        self.deprecation_time.is_some_and(|at| at <= now)
    }

    /// The last launch EC2 knows of, or (never launched) the image's creation.
    pub fn last_used(&self) -> Option<Timestamp> {
        self.last_launched_time.or(self.creation_date)
    }

    /// When amictl disabled the image (its tag), if it did and the image is still disabled by
    /// that disable. The time is distrusted, as a stranger's value, where EC2 shows it can't
    /// belong to the disable in force: an instance launched since (a disabled image launches
    /// nothing, so it was enabled in between), or a time before the image existed (a tag
    /// carried over from another image). `amictl enable` removes it; an enable and a new
    /// disable by another tool, with no launch in between, EC2 doesn't show.
    pub fn disabled_by_amictl_at(&self) -> Option<Timestamp> {
        if self.state != Some(ImageState::Disabled) {
            return None;
        }
        let at: Timestamp = self.tags.get(DISABLED_AT_TAG)?.parse().ok()?;
        // EC2 keeps launch times to the second (or coarser): a launch in the disable's own
        // second counts as after it, which errs on the side of keeping.
        let launched_since = (self.last_launched_time).is_some_and(|launched| launched.as_second() >= at.as_second());
        let before_it_existed = self.creation_date.is_some_and(|created| created > at);
        (!launched_since && !before_it_existed).then_some(at)
    }

    /// The image's place on the way out (see [`Stage`]).
    pub fn stage(&self, now: Timestamp) -> Stage {
        let available = self.state.as_ref().is_none_or(ImageState::is_launchable);
        match &self.state {
            Some(ImageState::Disabled) => Stage::Disabled,
            _ if available && self.is_deprecated(now) => Stage::Deprecated,
            _ if available && self.deprecation_time.is_some() => Stage::Deprecating,
            Some(state) => Stage::State(state.clone()),
            None => Stage::Unknown,
        }
    }

    /// Whether EC2 says it is disabled.
    pub fn is_disabled(&self) -> bool {
        self.state == Some(ImageState::Disabled)
    }
}

/// Names as a person orders them: runs of digits by their number, so `web-10` comes after
/// `web-9` (build numbers), and the rest character by character.
pub fn natural_order(left: &str, right: &str) -> std::cmp::Ordering {
    let (mut left, mut right) = (left, right);
    loop {
        let (Some(first), Some(second)) = (left.chars().next(), right.chars().next()) else {
            return left.len().cmp(&right.len());
        };
        if first.is_ascii_digit() && second.is_ascii_digit() {
            let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (left_end, right_end) = (digits(left), digits(right));
            let value = |run: &str| run.trim_start_matches('0').to_owned();
            let (left_value, right_value) = (value(&left[..left_end]), value(&right[..right_end]));
            let order = (left_value.len().cmp(&right_value.len()))
                .then_with(|| left_value.cmp(&right_value))
                .then_with(|| left_end.cmp(&right_end));
            if order.is_ne() {
                return order;
            }
            (left, right) = (&left[left_end..], &right[right_end..]);
        } else {
            if first != second {
                return first.cmp(&second);
            }
            (left, right) = (&left[first.len_utf8()..], &right[second.len_utf8()..]);
        }
    }
}

/// The tag amictl puts on an image it disables: when (RFC 3339).
pub const DISABLED_AT_TAG: &str = "amictl:disabled-at";

/// On a copy amictl made: the image it was copied from, and that image's region. A re-run of
/// `copy` finds its earlier copies by these two tags.
pub const SOURCE_IMAGE_TAG: &str = "amictl:source-image-id";
pub const SOURCE_REGION_TAG: &str = "amictl:source-region";

/// The tag(s) amictl puts on an image it disables: the launch permissions DisableImage
/// removed, space-separated (`public`, account IDs, organization and OU ARNs). A list longer
/// than a tag value holds (256 characters) goes on in `amictl:launch-permissions-2`, `-3`, ….
pub const PERMISSIONS_TAG: &str = "amictl:launch-permissions";

/// Deregistration protection of an image at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    Off,
    /// On; with the cooldown, turning it off keeps the image 24 hours more.
    On {
        cooldown: bool,
    },
    /// Turned off, but the cooldown runs until then.
    CoolingDown(Timestamp),
    /// A value amictl doesn't know: counted as on.
    Unreadable(String),
}

impl Protection {
    /// Why the image can't be deregistered, for a plan's REASON; `None` when it can.
    pub fn reason(&self) -> Option<String> {
        match self {
            Protection::Off => None,
            Protection::On { cooldown: false } => {
                Some("deregistration protection is on; `amictl unprotect` turns it off".to_owned())
            }
            Protection::On { cooldown: true } => Some(
                "deregistration protection is on, with a 24-hour cooldown; `amictl unprotect` starts the cooldown"
                    .to_owned(),
            ),
            Protection::CoolingDown(until) => Some(format!(
                "deregistration protection was turned off, but its cooldown runs until {until}"
            )),
            Protection::Unreadable(value) => Some(format!(
                "deregistration protection is '{value}', which amictl can't read; kept"
            )),
        }
    }

    /// In a word or two, for describe.
    pub fn label(&self) -> String {
        match self {
            Protection::Off => "off".to_owned(),
            Protection::On { cooldown: false } => "on".to_owned(),
            Protection::On { cooldown: true } => "on (24h cooldown)".to_owned(),
            Protection::CoolingDown(until) => format!("cooldown until {until}"),
            Protection::Unreadable(value) => value.clone(),
        }
    }
}

/// An image in the Recycle Bin: restorable until it leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinnedImage {
    pub image_id: ImageId,
    pub name: Option<String>,
    pub description: Option<String>,
    /// When it was deregistered into the bin.
    pub recycle_bin_enter_time: Option<Timestamp>,
    /// When it leaves the bin for good.
    pub recycle_bin_exit_time: Option<Timestamp>,
}

impl BinnedImage {
    pub fn from_ec2(entry: &aws_sdk_ec2::types::ImageRecycleBinInfo) -> Option<BinnedImage> {
        let time =
            |t: Option<&aws_sdk_ec2::primitives::DateTime>| t.and_then(|t| Timestamp::from_second(t.secs()).ok());
        Some(BinnedImage {
            image_id: ImageId::from_ec2(entry.image_id()?),
            name: entry.name().map(str::to_owned),
            description: entry.description().map(str::to_owned),
            recycle_bin_enter_time: time(entry.recycle_bin_enter_time()),
            recycle_bin_exit_time: time(entry.recycle_bin_exit_time()),
        })
    }
}

/// What kind of thing can launch an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// A non-terminated instance running from it.
    Instance,
    /// The latest or default version of a launch template.
    LaunchTemplate,
    /// An Auto Scaling group, through the launch template versions it names.
    AutoScalingGroup,
    /// An Auto Scaling launch configuration.
    LaunchConfiguration,
    /// An EC2 Fleet that is not deleted.
    Fleet,
    /// A Spot Fleet request that is not cancelled.
    SpotFleetRequest,
    /// An open or active Spot Instance request (persistent ones launch again).
    SpotInstanceRequest,
    /// An SSM parameter of data type `aws:ec2:image`.
    SsmParameter,
    /// A resource EC2's DescribeImageReferences names (e.g. an Image Builder recipe).
    Reference,
}

impl UserKind {
    fn label(self) -> &'static str {
        match self {
            UserKind::Instance => "instance",
            UserKind::LaunchTemplate => "launch template",
            UserKind::AutoScalingGroup => "Auto Scaling group",
            UserKind::LaunchConfiguration => "launch configuration",
            UserKind::Fleet => "EC2 Fleet",
            UserKind::SpotFleetRequest => "Spot Fleet request",
            UserKind::SpotInstanceRequest => "Spot Instance request",
            UserKind::SsmParameter => "SSM parameter",
            UserKind::Reference => "resource",
        }
    }
}

/// Something that can launch an image, so that deregistering it would break something, and
/// how it reaches the image (`via`: a launch template version, an SSM parameter).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImageUser {
    pub kind: UserKind,
    pub id: String,
    pub via: Vec<String>,
}

impl ImageUser {
    pub fn new(kind: UserKind, id: impl Into<String>) -> ImageUser {
        ImageUser {
            kind,
            id: id.into(),
            via: Vec::new(),
        }
    }

    /// The same user, reaching the image through `step` as well.
    #[must_use]
    pub fn via(mut self, step: impl Into<String>) -> ImageUser {
        self.via.push(step.into());
        self
    }
}

impl std::fmt::Display for ImageUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.label(), self.id)?;
        for step in &self.via {
            write!(f, " through {step}")?;
        }
        Ok(())
    }
}

/// Images mapped to what can launch them.
pub type ImageUsers = BTreeMap<ImageId, std::collections::BTreeSet<ImageUser>>;

/// "Is this image still needed?", answered once per region: what can launch each candidate,
/// and what amictl could not check (which keeps every candidate, never reads as "unused").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageMap {
    pub users: ImageUsers,
    /// What creates volumes from each snapshot (launch template versions and launch
    /// configurations whose block device mappings name it).
    pub snapshot_users: BTreeMap<SnapshotId, std::collections::BTreeSet<ImageUser>>,
    /// Consumers whose image could not be told, e.g. an SSM parameter that can't be read.
    pub unchecked: Vec<String>,
    /// Checks the endpoint doesn't offer, for a note on stderr (the scans cover them).
    pub not_offered: Vec<String>,
}

/// The images in the Recycle Bin, where the endpoint says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RecycleBin {
    /// The endpoint doesn't offer ListImagesInRecycleBin.
    #[default]
    NotOffered,
    Images(std::collections::BTreeSet<ImageId>),
}

/// One of the account's EBS snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub snapshot_id: SnapshotId,
    /// The region it lives in.
    pub region: Region,
    /// The account it was found in, when amictl works through `--role-arn`.
    pub account_id: Option<AccountId>,
    pub size_gib: Option<i64>,
    pub description: Option<String>,
    pub state: Option<SnapshotState>,
    pub start_time: Option<Timestamp>,
}

impl Snapshot {
    /// The image this snapshot was made for, read from the description EC2 gives the
    /// snapshots of CreateImage (`Created by CreateImage(i-…) for ami-…`) and CopyImage
    /// (`Copied for DestinationAmi ami-… from SourceAmi ami-…`). `None` for snapshots made
    /// any other way, which cleanup never touches as orphans.
    pub fn made_for_image(&self) -> Option<ImageId> {
        image_of_snapshot_description(self.description.as_deref()?)
    }
}

/// The image a snapshot was made for, from the description EC2 gives the snapshots of
/// CreateImage and CopyImage.
fn image_of_snapshot_description(description: &str) -> Option<ImageId> {
    let rest = if let Some(rest) = description.strip_prefix("Created by CreateImage(") {
        rest.split_once(") for ")?.1
    } else {
        description.strip_prefix("Copied for DestinationAmi ")?
    };
    let id = rest.split_whitespace().next()?;
    id.parse().ok()
}

/// A snapshot in the Recycle Bin: restorable until it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinnedSnapshot {
    pub snapshot_id: SnapshotId,
    pub description: Option<String>,
    pub recycle_bin_exit_time: Option<Timestamp>,
}

impl BinnedSnapshot {
    /// The image it was made for (its description says), as [`Snapshot::made_for_image`].
    pub fn made_for_image(&self) -> Option<ImageId> {
        image_of_snapshot_description(self.description.as_deref()?)
    }
}

impl Image {
    /// Decides the backing from what the endpoint reported: its root device type when that is
    /// `ebs` or `instance-store`, else the root device's mapping (an EBS mapping means `ebs`).
    /// moto, for one, reports `standard` for the images it creates.
    pub fn backing_from(
        root_device_type: Option<&str>,
        root_device_name: Option<&str>,
        devices: &[BlockDevice],
    ) -> Backing {
        match root_device_type {
            Some("ebs") => Backing::Ebs,
            Some("instance-store") => Backing::InstanceStore,
            _ => {
                let root = devices
                    .iter()
                    .find(|d| d.device_name.is_some() && d.device_name.as_deref() == root_device_name);
                match root {
                    Some(d) if d.is_ebs() => Backing::Ebs,
                    Some(_) => Backing::InstanceStore,
                    None => Backing::Unknown,
                }
            }
        }
    }
}

/// An EC2 instance, as far as imaging it is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub instance_id: String,
    /// `pending`, `running`, `stopped`, `terminated` …
    pub state: Option<String>,
    /// `ebs` or `instance-store` (only EBS-backed instances can be imaged with CreateImage).
    pub root_device_type: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    /// The instance's Name tag.
    pub fn name(&self) -> Option<&str> {
        self.tags.get("Name").map(String::as_str).filter(|n| !n.is_empty())
    }
}

#[cfg(test)]
impl Image {
    /// An available, EBS-backed image with one 8 GiB snapshot, for tests to adjust.
    pub fn for_tests(image_id: &str) -> Image {
        let snapshot_id = SnapshotId::from_ec2(format!("snap-{}", image_id.trim_start_matches("ami-")));
        Image {
            image_id: ImageId::from_ec2(image_id),
            region: "eu-west-1".parse().expect("a region"),
            account_id: None,
            account_name: None,
            name: Some(format!("name-{image_id}")),
            description: None,
            state: Some(ImageState::Available),
            owner_id: Some("123456789012".to_owned()),
            creation_date: Some("2026-01-01T00:00:00Z".parse().expect("a timestamp")),
            backing: Backing::Ebs,
            root_device_name: Some("/dev/xvda".to_owned()),
            architecture: Some("x86_64".to_owned()),
            public: Some(false),
            block_devices: vec![BlockDevice {
                device_name: Some("/dev/xvda".to_owned()),
                snapshot_id: Some(snapshot_id.clone()),
                volume_size_gib: Some(8),
                volume_type: Some("gp3".to_owned()),
                encrypted: Some(false),
                kms_key_id: None,
                delete_on_termination: Some(true),
                virtual_name: None,
            }],
            size_gib: 8,
            snapshot_ids: vec![snapshot_id],
            tags: BTreeMap::new(),
            deprecation_time: None,
            source_instance_id: None,
            source_image_id: None,
            source_image_region: None,
            state_reason: None,
            deregistration_protection: None,
            last_launched_time: None,
        }
    }
}

/// Who may launch an image besides its owner, who always may.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LaunchPermissions {
    pub public: bool,
    pub accounts: Vec<String>,
    pub organization_arns: Vec<String>,
    pub organizational_unit_arns: Vec<String>,
}

impl LaunchPermissions {
    /// The number of explicit grants (accounts, organizations, OUs).
    pub fn explicit_count(&self) -> usize {
        self.accounts.len() + self.organization_arns.len() + self.organizational_unit_arns.len()
    }

    /// Who besides the owner may launch the image, as words: these permissions (if read), and
    /// `public` where DescribeImages says so and they weren't read.
    pub fn shared_with(image: &Image, permissions: Option<&LaunchPermissions>) -> Vec<String> {
        let mut words = permissions.map(LaunchPermissions::words).unwrap_or_default();
        if image.public == Some(true) && words.first().is_none_or(|w| w != "public") {
            words.insert(0, "public".to_owned());
        }
        words
    }

    /// Shared with accounts, organizations or OUs, and not public: who may launch it is a
    /// list a usage report can answer for.
    pub fn shared_but_not_public(&self) -> bool {
        !self.public && self.explicit_count() > 0
    }

    /// Every grant as a word: `public`, then account IDs, organization and OU ARNs.
    pub fn words(&self) -> Vec<String> {
        (self.public.then(|| "public".to_owned()).into_iter())
            .chain(self.accounts.iter().cloned())
            .chain(self.organization_arns.iter().cloned())
            .chain(self.organizational_unit_arns.iter().cloned())
            .collect()
    }

    /// The permissions as the tags amictl records them in before disabling an image
    /// ([`PERMISSIONS_TAG`], then `-2`, `-3`, … as a tag value holds 256 characters).
    pub fn to_tags(&self) -> BTreeMap<String, String> {
        let mut values: Vec<String> = Vec::new();
        for word in self.words() {
            match values.last_mut() {
                Some(value) if value.len() + 1 + word.len() <= TAG_VALUE_LIMIT => {
                    value.push(' ');
                    value.push_str(&word);
                }
                _ => values.push(word),
            }
        }
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| (permissions_tag_key(i), value))
            .collect()
    }

    /// The permissions recorded in an image's tags; `Ok(None)` when it has no record. The
    /// record is read as a stranger's input: every word must be `public`, an account ID, an
    /// organization ARN or an OU ARN, or the whole record is refused (`Err` names the word).
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Result<Option<LaunchPermissions>, String> {
        let mut words = Vec::new();
        let mut index = 0;
        while let Some(value) = tags.get(&permissions_tag_key(index)) {
            words.extend(value.split_whitespace());
            index += 1;
        }
        if let Some(stray) = tags
            .keys()
            .filter(|k| k.starts_with(PERMISSIONS_TAG))
            .find(|k| (0..index).all(|i| permissions_tag_key(i) != **k))
        {
            return Err(format!("tag {stray} doesn't follow on from the tags before it"));
        }
        if index == 0 {
            return Ok(None);
        }
        let mut permissions = LaunchPermissions::default();
        for word in words {
            if word == "public" {
                permissions.public = true;
            } else if word.parse::<crate::types::AccountId>().is_ok() {
                permissions.accounts.push(word.to_owned());
            } else if word.parse::<crate::types::OrgArn>().is_ok() {
                permissions.organization_arns.push(word.to_owned());
            } else if word.parse::<crate::types::OuArn>().is_ok() {
                permissions.organizational_unit_arns.push(word.to_owned());
            } else {
                return Err(format!(
                    "'{word}' is neither public, an account ID, an organization ARN nor an OU ARN"
                ));
            }
        }
        Ok(Some(permissions.deduplicated()))
    }

    /// Every grant of either, each once (a record merged with the grants an image has now).
    #[must_use]
    pub fn union(&self, other: &LaunchPermissions) -> LaunchPermissions {
        LaunchPermissions {
            public: self.public || other.public,
            accounts: self.accounts.iter().chain(&other.accounts).cloned().collect(),
            organization_arns: (self.organization_arns.iter())
                .chain(&other.organization_arns)
                .cloned()
                .collect(),
            organizational_unit_arns: (self.organizational_unit_arns.iter())
                .chain(&other.organizational_unit_arns)
                .cloned()
                .collect(),
        }
        .deduplicated()
    }

    fn deduplicated(self) -> LaunchPermissions {
        LaunchPermissions {
            public: self.public,
            accounts: crate::types::each_once(self.accounts),
            organization_arns: crate::types::each_once(self.organization_arns),
            organizational_unit_arns: crate::types::each_once(self.organizational_unit_arns),
        }
    }

    /// Why the record can't be written next to the image's other tags (EC2 takes at most 50
    /// tags a resource), or `None` when it fits. `disabled_at`: the disable time's tag too.
    pub fn record_fits(&self, tags: &BTreeMap<String, String>) -> Option<String> {
        let others = tags.keys().filter(|k| !Self::is_record_key(k)).count();
        let needed = self.to_tags().len() + 1;
        (others + needed > TAGS_PER_RESOURCE).then(|| {
            format!(
                "recording its {} launch permission(s) takes {needed} tags, and it has {others} others: EC2 takes {TAGS_PER_RESOURCE} a resource; remove some tags, or some grants with `amictl permissions remove`",
                self.words().len()
            )
        })
    }

    /// Whether a tag key belongs to amictl's record of a disable.
    pub fn is_record_key(key: &str) -> bool {
        key == DISABLED_AT_TAG || key.starts_with(PERMISSIONS_TAG)
    }

    /// The keys of every tag of a record amictl made on this image.
    pub fn recorded_tag_keys(tags: &BTreeMap<String, String>) -> Vec<String> {
        tags.keys().filter(|k| Self::is_record_key(k)).cloned().collect()
    }
}

/// The longest value EC2 takes for a tag.
const TAG_VALUE_LIMIT: usize = 256;

/// The most tags EC2 takes on one resource.
const TAGS_PER_RESOURCE: usize = 50;

fn permissions_tag_key(index: usize) -> String {
    match index {
        0 => PERMISSIONS_TAG.to_owned(),
        n => format!("{PERMISSIONS_TAG}-{}", n + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_order_build_numbers_by_their_value() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        assert_eq!(natural_order("web-10", "web-9"), Greater);
        assert_eq!(natural_order("web-2", "web-10"), Less);
        assert_eq!(natural_order("web-9", "web-9"), Equal);
        assert_eq!(
            natural_order("web-09", "web-9"),
            Greater,
            "equal values: the longer spelling last"
        );
        assert_eq!(natural_order("web-1-b", "web-1-a"), Greater);
        assert_eq!(natural_order("web", "web-1"), Less);
        assert_eq!(natural_order("app-20240101", "app-20231231"), Greater);

        let mut same_second: Vec<Image> = ["tty-9", "tty-10", "tty-1", "tty-12"]
            .iter()
            .map(|name| {
                let mut image = Image::for_tests(&format!("ami-0000000000000000{}", name.len()));
                image.name = Some((*name).to_owned());
                image
            })
            .collect();
        same_second.sort_by(Image::newest_first);
        let names: Vec<&str> = same_second.iter().filter_map(|i| i.name.as_deref()).collect();
        assert_eq!(names, ["tty-12", "tty-10", "tty-9", "tty-1"]);
    }

    fn device(name: &str, snapshot: Option<&str>, virtual_name: Option<&str>) -> BlockDevice {
        BlockDevice {
            device_name: Some(name.to_owned()),
            snapshot_id: snapshot.map(SnapshotId::from_ec2),
            volume_size_gib: snapshot.map(|_| 8),
            volume_type: None,
            encrypted: None,
            kms_key_id: None,
            delete_on_termination: None,
            virtual_name: virtual_name.map(str::to_owned),
        }
    }

    #[test]
    fn snapshots_made_for_images_are_told_apart_from_the_rest() {
        let snapshot = |description: &str| Snapshot {
            snapshot_id: SnapshotId::from_ec2("snap-1"),
            region: "eu-west-1".parse().expect("a region"),
            account_id: None,
            size_gib: Some(8),
            description: Some(description.to_owned()),
            state: Some(SnapshotState::Completed),
            start_time: None,
        };
        assert_eq!(
            snapshot("Created by CreateImage(i-0123456789abcdef0) for ami-0123456789abcdef0").made_for_image(),
            Some(ImageId::from_ec2("ami-0123456789abcdef0"))
        );
        assert_eq!(
            snapshot("Copied for DestinationAmi ami-0123456789abcdef0 from SourceAmi ami-12345678 for SourceSnapshot snap-1. Task created on 1,700,000,000.").made_for_image(),
            Some(ImageId::from_ec2("ami-0123456789abcdef0"))
        );
        for other in [
            "nightly backup",
            "Created by CreateImage(i-1) for nothing",
            "Created by CreateImage",
        ] {
            assert_eq!(snapshot(other).made_for_image(), None, "{other}");
        }
    }

    #[test]
    fn newest_first_breaks_ties_within_a_second_by_name_then_id() {
        let image = |id: &str, name: Option<&str>, created: Option<&str>| {
            let mut image = Image::for_tests(id);
            image.name = name.map(str::to_owned);
            image.creation_date = created.map(|c| c.parse().unwrap());
            image
        };
        let mut images = [
            image("ami-00000001", Some("app-20260101"), Some("2026-01-01T00:00:00Z")),
            image("ami-00000002", None, None),
            image("ami-00000003", Some("app-20260102"), Some("2026-01-01T00:00:00Z")),
            image("ami-00000004", Some("app-20260102"), Some("2026-01-01T00:00:00Z")),
            image("ami-00000005", Some("old"), Some("2025-01-01T00:00:00Z")),
        ];
        images.sort_by(Image::newest_first);
        let order: Vec<&str> = images.iter().map(|i| i.image_id.as_str()).collect();
        assert_eq!(
            order,
            [
                "ami-00000003",
                "ami-00000004",
                "ami-00000001",
                "ami-00000005",
                "ami-00000002"
            ]
        );
    }

    #[test]
    fn deregistration_protection_keeps_an_image_while_on_during_its_cooldown_and_when_unreadable() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let mut image = Image::for_tests("ami-12345678");
        let mut protection = |value: &str| {
            image.deregistration_protection = Some(value.to_owned());
            image.protection(now)
        };
        assert_eq!(protection(""), Protection::Off);
        assert_eq!(protection("disabled"), Protection::Off);
        assert_eq!(
            protection("enabled-without-cooldown"),
            Protection::On { cooldown: false }
        );
        assert_eq!(protection("enabled-with-cooldown"), Protection::On { cooldown: true });
        assert_eq!(
            protection("disabled-until 2026-11-29T10:00:00.000Z"),
            Protection::CoolingDown("2026-11-29T10:00:00Z".parse().unwrap())
        );
        assert_eq!(
            protection("disabled-until 2026-11-27T10:00:00Z"),
            Protection::Off,
            "cooldown over"
        );
        assert!(matches!(protection("locked-by-legal"), Protection::Unreadable(_)));
        assert!(
            image.protection(now).reason().is_some(),
            "what amictl can't read, it keeps"
        );
    }

    #[test]
    fn launch_permissions_survive_their_tags_however_many_there_are() {
        let permissions = LaunchPermissions {
            public: true,
            accounts: (0..40).map(|i| format!("1111222233{i:02}")).collect(),
            organization_arns: vec!["arn:aws:organizations::123456789012:organization/o-abcdef1234".to_owned()],
            organizational_unit_arns: vec![
                "arn:aws:organizations::123456789012:ou/o-abcdef1234/ou-ab12-cdef3456".to_owned(),
            ],
        };
        let tags = permissions.to_tags();
        assert!(tags.len() > 1, "over 256 characters spill into more tags: {tags:?}");
        assert!(tags.values().all(|v| v.len() <= 256));
        assert!(tags.contains_key("amictl:launch-permissions-2"));
        assert_eq!(LaunchPermissions::from_tags(&tags), Ok(Some(permissions)));

        let none = LaunchPermissions::default();
        assert!(none.to_tags().is_empty());
        assert_eq!(LaunchPermissions::from_tags(&BTreeMap::new()), Ok(None), "no record");
    }

    #[test]
    fn a_record_is_read_as_a_strangers_input() {
        let record = |values: &[(&str, &str)]| {
            let tags: BTreeMap<String, String> =
                values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            LaunchPermissions::from_tags(&tags)
        };
        for hostile in [
            "111122223333 $(curl evil)",
            "1111",
            "arn:aws:iam::111122223333:root",
            "all",
        ] {
            assert!(record(&[("amictl:launch-permissions", hostile)]).is_err(), "{hostile}");
        }
        assert!(
            record(&[("amictl:launch-permissions-3", "111122223333")]).is_err(),
            "a spill-over tag with nothing before it"
        );
        let twice = record(&[("amictl:launch-permissions", "111122223333 111122223333 public")])
            .unwrap()
            .unwrap();
        assert_eq!((twice.public, twice.accounts.len()), (true, 1));
    }

    #[test]
    fn a_merged_record_keeps_every_grant_of_both_once() {
        let earlier = LaunchPermissions {
            accounts: (0..30).map(|i| format!("1111222233{i:02}")).collect(),
            ..LaunchPermissions::default()
        };
        let now = LaunchPermissions {
            accounts: vec!["111122223301".to_owned(), "444455556666".to_owned()],
            ..LaunchPermissions::default()
        };
        let merged = earlier.union(&now);
        assert_eq!(merged.accounts.len(), 31);
        assert_eq!(merged.accounts.last().map(String::as_str), Some("444455556666"));
    }

    #[test]
    fn a_record_that_does_not_fit_the_tag_limit_is_refused() {
        let grants = LaunchPermissions {
            accounts: vec!["111122223333".to_owned()],
            ..LaunchPermissions::default()
        };
        let mut tags: BTreeMap<String, String> = (0..48).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(grants.record_fits(&tags), None, "48 + record + time = 50");
        tags.insert("k48".to_owned(), "v".to_owned());
        let why = grants.record_fits(&tags).unwrap();
        assert!(why.contains("EC2 takes 50"), "{why}");
        tags.remove("k48");
        tags.insert(PERMISSIONS_TAG.to_owned(), "old".to_owned());
        tags.insert(DISABLED_AT_TAG.to_owned(), "old".to_owned());
        assert_eq!(
            grants.record_fits(&tags),
            None,
            "an old record's tags are replaced, not added to"
        );
    }

    #[test]
    fn the_stage_is_disabled_then_deprecated_then_the_state() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let mut image = Image::for_tests("ami-12345678");
        assert_eq!(image.stage(now), Stage::State(ImageState::Available));
        image.deprecation_time = Some("2026-12-28T12:00:00Z".parse().unwrap());
        assert_eq!(image.stage(now), Stage::Deprecating);
        image.deprecation_time = Some("2026-10-28T12:00:00Z".parse().unwrap());
        assert_eq!(image.stage(now), Stage::Deprecated);
        image.state = Some(ImageState::Disabled);
        assert_eq!(image.stage(now), Stage::Disabled);
        assert_eq!(image.disabled_by_amictl_at(), None, "not without amictl's tag");
        image
            .tags
            .insert(DISABLED_AT_TAG.to_owned(), "2026-11-01T00:00:00Z".to_owned());
        assert_eq!(
            image.disabled_by_amictl_at(),
            Some("2026-11-01T00:00:00Z".parse().unwrap())
        );
        image.last_launched_time = Some("2026-11-02T00:00:00Z".parse().unwrap());
        assert_eq!(
            image.disabled_by_amictl_at(),
            None,
            "launched after it: enabled since, so the time is an earlier disable's"
        );
        image.last_launched_time = None;
        image.creation_date = Some("2026-11-05T00:00:00Z".parse().unwrap());
        assert_eq!(image.disabled_by_amictl_at(), None, "a time before the image existed");
    }

    #[test]
    fn backing_trusts_the_root_device_type_when_it_is_a_real_value() {
        assert_eq!(Image::backing_from(Some("ebs"), None, &[]), Backing::Ebs);
        assert_eq!(
            Image::backing_from(Some("instance-store"), None, &[]),
            Backing::InstanceStore
        );
    }

    #[test]
    fn backing_falls_back_to_the_root_mapping_for_other_values() {
        let ebs_root = [device("/dev/xvda", Some("snap-1"), None)];
        assert_eq!(
            Image::backing_from(Some("standard"), Some("/dev/xvda"), &ebs_root),
            Backing::Ebs
        );
        let ephemeral_root = [device("/dev/sda1", None, Some("ephemeral0"))];
        assert_eq!(
            Image::backing_from(None, Some("/dev/sda1"), &ephemeral_root),
            Backing::InstanceStore
        );
        assert_eq!(
            Image::backing_from(Some("standard"), Some("/dev/sdz"), &ebs_root),
            Backing::Unknown
        );
    }
}
