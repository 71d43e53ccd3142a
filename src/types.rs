//! What users type, parsed into types at the edge.
//!
//! Every value a user gives on the command line goes through one of these `FromStr`
//! implementations (clap calls them), so a bad value is a usage error (exit 2) before the
//! runtime starts and before any request is sent. One type, one place, one message.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Longest value a user may pass anywhere; guards against pasted garbage.
const MAX_VALUE_LEN: usize = 1024;

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An EC2 resource ID: `prefix` and 8 or 17 lowercase hex digits (`ami-…`, `i-…`).
fn resource_id(s: &str, prefix: &str, what: &str) -> Result<String, String> {
    match s.strip_prefix(prefix) {
        Some(hex) if matches!(hex.len(), 8 | 17) && is_lower_hex(hex) => Ok(s.to_owned()),
        _ => Err(format!(
            "'{}' is not {what}: expected '{prefix}' and 8 or 17 lowercase hex digits, e.g. {prefix}0123456789abcdef0",
            shorten(s)
        )),
    }
}

/// An AMI ID: `ami-` followed by 8 or 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(String);

impl ImageId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An ID EC2 itself answered with: taken as it is (EC2 is the authority on its IDs; what
    /// users type goes through [`FromStr`]).
    pub fn from_ec2(id: impl Into<String>) -> ImageId {
        ImageId(id.into())
    }

    /// Finds the image IDs mentioned in a free-text message (EC2 names them in its errors).
    pub fn find_in(text: &str) -> Vec<ImageId> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(|word| word.parse().ok())
            .collect()
    }
}

impl FromStr for ImageId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "unused" {
            // `--include-shared unused` leaves the value to the image IDs that follow.
            return Err("'unused' is not an image ID; did you mean --include-shared=unused?".to_owned());
        }
        resource_id(s, "ami-", "an image ID").map(Self)
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An EBS snapshot ID: `snap-` followed by 8 or 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(String);

impl SnapshotId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An ID EC2 itself answered with, taken as it is.
    pub fn from_ec2(id: impl Into<String>) -> SnapshotId {
        SnapshotId(id.into())
    }
}

impl FromStr for SnapshotId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        resource_id(s, "snap-", "a snapshot ID").map(Self)
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for SnapshotId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ImageId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// An EC2 instance ID: `i-` followed by 8 or 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        resource_id(s, "i-", "an instance ID").map(Self)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS account ID: exactly 12 digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(String);

impl FromStr for AccountId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("'{}' is not an AWS account ID: expected 12 digits", shorten(s)))
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `lowercase letters and digits, between min and max of them`.
fn is_lower_alnum(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The AWS partitions, by the prefix of their regions' names, longest first; a region no
/// prefix matches is in `aws`. The one place amictl knows them (the SDK's own partition data
/// is private to its endpoint resolvers): ARNs it builds and ARNs it accepts follow it.
const PARTITIONS: &[(&str, &str)] = &[
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-gov-", "aws-us-gov"),
    ("eusc-", "aws-eusc"),
    ("cn-", "aws-cn"),
];

/// The partition a region is in (`aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, `aws-iso-b`,
/// `aws-iso-e`, `aws-iso-f`, `aws-eusc`): the second field of every ARN there.
pub fn partition_of(region: &str) -> &'static str {
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// Whether an ARN's partition field names a partition.
fn is_partition(partition: &str) -> bool {
    partition == "aws" || PARTITIONS.iter().any(|(_, p)| *p == partition)
}

/// `arn:<partition>:organizations::<12 digits>:<rest>` → rest.
fn organizations_arn_rest(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !is_partition(partition) {
        return None;
    }
    let rest = rest.strip_prefix("organizations::")?;
    let (account, rest) = rest.split_once(':')?;
    account.parse::<AccountId>().ok()?;
    Some(rest)
}

fn is_organization_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|id| is_lower_alnum(id, 10, 32))
}

/// An AWS Organizations organization ARN:
/// `arn:aws:organizations::<account>:organization/o-<10-32 lowercase letters or digits>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgArn(String);

impl OrgArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OrgArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = organizations_arn_rest(s)
            .and_then(|rest| rest.strip_prefix("organization/"))
            .is_some_and(is_organization_id);
        if ok {
            Ok(OrgArn(s.to_owned()))
        } else {
            Err(format!(
                "'{}' is not an organization ARN: expected arn:aws:organizations::123456789012:organization/o-exampleorgid",
                shorten(s)
            ))
        }
    }
}

/// An AWS Organizations organizational unit ARN:
/// `arn:aws:organizations::<account>:ou/o-<org id>/ou-<root id>-<ou id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuArn(String);

impl OuArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OuArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = organizations_arn_rest(s)
            .and_then(|rest| rest.strip_prefix("ou/"))
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(org, ou)| {
                is_organization_id(org)
                    && ou
                        .strip_prefix("ou-")
                        .and_then(|ou| ou.split_once('-'))
                        .is_some_and(|(root, unit)| is_lower_alnum(root, 4, 32) && is_lower_alnum(unit, 8, 32))
            });
        if ok {
            Ok(OuArn(s.to_owned()))
        } else {
            Err(format!(
                "'{}' is not an organizational unit ARN: expected arn:aws:organizations::123456789012:ou/o-exampleorgid/ou-examplerootid-exampleouid",
                shorten(s)
            ))
        }
    }
}

/// An IAM role ARN, `arn:aws:iam::<12 digits>:role/<path and name>`, to assume in an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    arn: String,
    account: AccountId,
}

impl RoleArn {
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The account the role lives in, where amictl works when it assumes the role.
    pub fn account_id(&self) -> &AccountId {
        &self.account
    }
}

impl FromStr for RoleArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = || {
            let rest = s.strip_prefix("arn:")?;
            let (partition, rest) = rest.split_once(':')?;
            if !is_partition(partition) {
                return None;
            }
            let (account, role) = rest.strip_prefix("iam::")?.split_once(':')?;
            let name = role.strip_prefix("role/")?;
            let name_ok = !name.is_empty()
                && name.len() <= 512
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
            name_ok.then_some(account.parse::<AccountId>().ok()?)
        };
        match parse() {
            Some(account) => Ok(RoleArn {
                arn: s.to_owned(),
                account,
            }),
            None => Err(format!(
                "'{}' is not an IAM role ARN: expected arn:aws:iam::123456789012:role/NAME",
                shorten(s)
            )),
        }
    }
}

impl RoleArn {
    /// The role `name` (with its path, if any) in `account`, in the partition of `region`.
    pub fn in_account(account: &AccountId, name: &RoleName, region: &Region) -> RoleArn {
        let partition = partition_of(region.as_str());
        RoleArn {
            arn: format!("arn:{partition}:iam::{account}:role/{}", name.0),
            account: account.clone(),
        }
    }
}

/// `--role-name`: an IAM role's name, with its path if it has one (`ops/amictl`), assumed in
/// each account of `--org` or `--accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleName(String);

impl FromStr for RoleName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim_matches('/');
        let last = name.rsplit('/').next().unwrap_or_default();
        let ok = !last.is_empty()
            && last.len() <= 64
            && name.len() <= 512
            && !name.contains("//")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
        if ok {
            Ok(RoleName(name.to_owned()))
        } else {
            Err(format!(
                "'{}' is not an IAM role name: expected letters, digits and + = , . @ _ - (up to 64), after an optional path (ops/amictl)",
                shorten(s)
            ))
        }
    }
}

/// `--launch-template`: a launch template by ID (`lt-` and 8 or 17 hex digits) or by name (3 to
/// 128 letters, digits and `( ) . - / _`, as the API reference's pattern for
/// `LaunchTemplateName` says).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LaunchTemplateRef {
    Id(String),
    Name(String),
}

impl FromStr for LaunchTemplateRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(hex) = s.strip_prefix("lt-")
            && (hex.len() == 8 || hex.len() == 17)
            && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Ok(LaunchTemplateRef::Id(s.to_owned()));
        }
        let named =
            (3..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "().-/_".contains(c));
        if named {
            Ok(LaunchTemplateRef::Name(s.to_owned()))
        } else {
            Err(format!(
                "'{}' is not a launch template: expected its ID (lt-…) or its name (3 to 128 letters, digits and ( ) . - / _)",
                shorten(s)
            ))
        }
    }
}

impl fmt::Display for LaunchTemplateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchTemplateRef::Id(id) => f.write_str(id),
            LaunchTemplateRef::Name(name) => f.write_str(name),
        }
    }
}

/// An SSM parameter's name as PutParameter takes it (the API reference's naming constraints):
/// letters, digits and `_ . -`, with `/` between the levels of a hierarchy (then it starts
/// with `/`), at most 15 levels and 1011 characters, not an ARN, and not starting with `aws`
/// or `ssm` (any case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParameterName(String);

impl ParameterName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ParameterName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| Err(format!("'{}' is not an SSM parameter name: {why}", shorten(s)));
        if s.starts_with("arn:") {
            return bad("name the parameter, not its ARN (PutParameter takes names only)");
        }
        if s.is_empty() || s.len() > 1011 {
            return bad("a name has 1 to 1011 characters");
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c))) {
            return bad(&format!("'{c}' is not allowed (letters, digits, _ . - and / only)"));
        }
        let levels: Vec<&str> = s.strip_prefix('/').unwrap_or(s).split('/').collect();
        if s.contains('/') && !s.starts_with('/') {
            return bad("a name in a hierarchy starts with / (e.g. /golden/web)");
        }
        if levels.iter().any(|level| level.is_empty()) {
            return bad("a level of the hierarchy is empty");
        }
        if levels.len() > 15 {
            return bad("a hierarchy has at most 15 levels");
        }
        let first = levels[0].to_ascii_lowercase();
        if first.starts_with("aws") || first.starts_with("ssm") {
            return bad("names starting with aws or ssm are reserved");
        }
        Ok(ParameterName(s.to_owned()))
    }
}

impl fmt::Display for ParameterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parameter version's label (`--label prod`), as LabelParameterVersion takes it: 1 to 100
/// letters, digits and `. - _`, not starting with a digit, `aws` or `ssm` (any case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParameterLabel(String);

impl ParameterLabel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ParameterLabel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let fine = (1..=100).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && !lower.starts_with("aws")
            && !lower.starts_with("ssm");
        if fine {
            Ok(ParameterLabel(s.to_owned()))
        } else {
            Err(format!(
                "'{}' is not a parameter label: 1 to 100 letters, digits and . - _, not starting with a digit, aws or ssm",
                shorten(s)
            ))
        }
    }
}

impl fmt::Display for ParameterLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `--include-shared` (every shared image) or `--include-shared=unused` (those no other account
/// uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeShared {
    All,
    Unused,
}

impl FromStr for IncludeShared {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(IncludeShared::All),
            "unused" => Ok(IncludeShared::Unused),
            other => Err(format!(
                "'{}' is not what --include-shared takes: give it alone (every shared image) or as --include-shared=unused",
                shorten(other)
            )),
        }
    }
}

/// `--shard I/N`: the I-th of N parts of the accounts, by account ID, so that N jobs of a CI
/// matrix cover every account exactly once, whatever order the accounts are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Whether the account is in this part: its ID (a number) modulo N.
    pub fn holds(self, account: &AccountId) -> bool {
        account
            .as_str()
            .parse::<u64>()
            .is_ok_and(|id| id % self.count == self.index - 1)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
        match parsed {
            Some((index, count)) if count >= 1 && (1..=count).contains(&index) => Ok(Shard { index, count }),
            Some((index, count)) => Err(format!(
                "--shard {index}/{count} names no part: I counts from 1 to N, e.g. 1/{}",
                count.max(1)
            )),
            None => Err(format!("'{}' is not a shard: expected I/N, e.g. 1/4", shorten(s))),
        }
    }
}

/// Whose images to list: `self`, `amazon`, `aws-marketplace` or an account ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Me,
    Amazon,
    AwsMarketplace,
    Account(AccountId),
}

impl Owner {
    /// The value DescribeImages' `Owners` parameter takes.
    pub fn as_api_value(&self) -> &str {
        match self {
            Owner::Me => "self",
            Owner::Amazon => "amazon",
            Owner::AwsMarketplace => "aws-marketplace",
            Owner::Account(id) => &id.0,
        }
    }
}

impl FromStr for Owner {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "self" => Ok(Owner::Me),
            "amazon" => Ok(Owner::Amazon),
            "aws-marketplace" => Ok(Owner::AwsMarketplace),
            _ => s.parse().map(Owner::Account).map_err(|_| {
                format!(
                    "'{}' is not an owner: expected self, amazon, aws-marketplace or a 12-digit account ID",
                    shorten(s)
                )
            }),
        }
    }
}

/// A `KEY=VALUE` tag, within EC2's limits (key 1-128 characters, value up to 256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    /// The tags as the map EC2 requests take (a key given twice: the last value).
    pub fn map(tags: &[Tag]) -> std::collections::BTreeMap<String, String> {
        tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
    }

    /// Tags a user asks amictl to write must not use `aws:` keys, which AWS reserves for
    /// itself, nor `amictl:` ones, amictl's own records (a disable's time and launch
    /// permissions, a copy's source), which it reads back later.
    pub fn check_writable<'a>(tags: impl IntoIterator<Item = &'a Tag>) -> Result<(), String> {
        for tag in tags {
            if tag.key.starts_with("aws:") {
                return Err(format!(
                    "tag key '{}' starts with aws:, which AWS reserves for itself; choose another key",
                    tag.key
                ));
            }
            if Tag::is_amictls(&tag.key) {
                return Err(format!(
                    "tag key '{}' starts with amictl:, which amictl keeps for its own records (a disable's launch permissions, a copy's source); choose another key",
                    tag.key
                ));
            }
        }
        Ok(())
    }

    /// Whether a tag key is one of amictl's own records (`amictl:`), never copied from
    /// elsewhere nor written at a user's word.
    pub fn is_amictls(key: &str) -> bool {
        key.starts_with("amictl:")
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl FromStr for Tag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((key, value)) = s.split_once('=') else {
            return Err(format!("'{}' is not a tag: expected KEY=VALUE", shorten(s)));
        };
        if key.is_empty() {
            return Err(format!("'{}' has an empty tag key: expected KEY=VALUE", shorten(s)));
        }
        if key.chars().count() > 128 {
            return Err("tag key is longer than 128 characters".to_owned());
        }
        if value.chars().count() > 256 {
            return Err("tag value is longer than 256 characters".to_owned());
        }
        Ok(Tag {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A glob over image names (`*`, `?`, `[...]`, `{a,b}`), matched as a whole name.
#[derive(Debug, Clone)]
pub struct NameGlob {
    pattern: String,
    matcher: globset::GlobMatcher,
}

impl NameGlob {
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }

    /// The pattern as EC2's `name` filter understands it (only `*` and `?` are wildcards
    /// there), or `None` when the glob uses syntax EC2 doesn't know and must be matched here.
    pub fn as_api_filter(&self) -> Option<&str> {
        let plain = !self.pattern.contains(['[', ']', '{', '}', '\\']);
        plain.then_some(self.pattern.as_str())
    }
}

impl PartialEq for NameGlob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl fmt::Display for NameGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl FromStr for NameGlob {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("the name pattern is empty: give a glob such as 'web-*'".to_owned());
        }
        if s.len() > MAX_VALUE_LEN {
            return Err(format!("the name pattern is longer than {MAX_VALUE_LEN} characters"));
        }
        let glob = globset::GlobBuilder::new(s)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("'{}' is not a valid glob: {}", shorten(s), e.kind()))?;
        Ok(NameGlob {
            pattern: s.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }
}

/// Checks EC2's rules for an image name: 3 to 128 characters, letters, digits, spaces and
/// `( ) [ ] . / - ' @ _`.
pub fn check_image_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if !(3..=128).contains(&length) {
        return Err(format!(
            "the image name '{}' is {length} characters long; EC2 takes 3 to 128",
            shorten(name)
        ));
    }
    if let Some(bad) = name.chars().find(|c| !is_image_name_char(*c)) {
        return Err(format!(
            "the image name '{}' has {bad:?}, which EC2 does not allow; use letters, digits, spaces and ( ) [ ] . / - ' @ _",
            shorten(name)
        ));
    }
    Ok(())
}

fn is_image_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c)
}

/// A placeholder in an image name, filled in locally so that every run gets a unique name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{date}`: UTC `YYYY-MM-DD`.
    Date,
    /// `{timestamp}`: UTC `YYYYMMDD-HHMMSS`.
    Timestamp,
    /// `{instance_id}`.
    InstanceId,
    /// `{instance_name}`: the instance's Name tag.
    InstanceName,
    /// `{source_name}`: the copied image's name (`copy` only).
    SourceName,
    /// `{source_region}`: the copied image's region (`copy` only).
    SourceRegion,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 6] = [
        ("date", Placeholder::Date),
        ("timestamp", Placeholder::Timestamp),
        ("instance_id", Placeholder::InstanceId),
        ("instance_name", Placeholder::InstanceName),
        ("source_name", Placeholder::SourceName),
        ("source_region", Placeholder::SourceRegion),
    ];

    /// `{date}` at `now`: UTC `YYYY-MM-DD`.
    pub fn date_of(now: jiff::Timestamp) -> String {
        now.strftime("%Y-%m-%d").to_string()
    }

    /// `{timestamp}` at `now`: UTC `YYYYMMDD-HHMMSS`.
    pub fn timestamp_of(now: jiff::Timestamp) -> String {
        now.strftime("%Y%m%d-%H%M%S").to_string()
    }

    /// How the name writes it, e.g. `{date}`.
    pub fn written(self) -> String {
        let name = Placeholder::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n);
        format!("{{{name}}}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePart {
    Text(String),
    Placeholder(Placeholder),
}

/// An image name with optional placeholders, e.g. `web-{date}` or `{instance_name}-{timestamp}`.
/// The literal text is checked against EC2's rules when parsed; the whole name once expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    parts: Vec<NamePart>,
}

impl NameTemplate {
    /// The first placeholder the name uses that `allowed` refuses, for checking a template
    /// against its command before any request.
    pub fn refused_placeholder(&self, allowed: impl Fn(Placeholder) -> bool) -> Option<Placeholder> {
        self.parts.iter().find_map(|part| match part {
            NamePart::Placeholder(p) if !allowed(*p) => Some(*p),
            _ => None,
        })
    }

    /// Fills the placeholders in with `value` and checks the result against EC2's rules.
    pub fn expand(&self, value: impl Fn(Placeholder) -> Result<String, String>) -> Result<String, String> {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                NamePart::Text(text) => name.push_str(text),
                NamePart::Placeholder(p) => name.push_str(&value(*p)?),
            }
        }
        check_image_name(&name)?;
        Ok(name)
    }
}

impl FromStr for NameTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let known = || Placeholder::ALL.map(|(n, _)| format!("{{{n}}}")).join(", ");
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("the name '{}' has a '}}' without its '{{'", shorten(s)));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("the name '{}' has a '{{' without its '}}'", shorten(s)));
            };
            let key = &rest[open + 1..open + close];
            let Some((_, placeholder)) = Placeholder::ALL.iter().find(|(n, _)| *n == key) else {
                return Err(format!("unknown placeholder {{{key}}} in the name; use {}", known()));
            };
            if open > 0 {
                parts.push(NamePart::Text(rest[..open].to_owned()));
            }
            parts.push(NamePart::Placeholder(*placeholder));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(NamePart::Text(rest.to_owned()));
        }
        let text: String = parts
            .iter()
            .filter_map(|p| match p {
                NamePart::Text(t) => Some(t.as_str()),
                NamePart::Placeholder(_) => None,
            })
            .collect();
        let has_placeholders = parts.iter().any(|p| matches!(p, NamePart::Placeholder(_)));
        if has_placeholders {
            // The placeholders' values are checked once known; the text around them now.
            if let Some(bad) = text.chars().find(|c| !is_image_name_char(*c)) {
                return Err(format!(
                    "the image name '{}' has {bad:?}, which EC2 does not allow; use letters, digits, spaces and ( ) [ ] . / - ' @ _",
                    shorten(s)
                ));
            }
            if text.chars().count() > 128 {
                return Err(format!("the image name '{}' is longer than 128 characters", shorten(s)));
            }
        } else {
            check_image_name(&text)?;
        }
        Ok(NameTemplate { parts })
    }
}

/// An image description: at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Description {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let length = s.chars().count();
        if length > 255 {
            return Err(format!(
                "the description is {length} characters long; EC2 takes at most 255"
            ));
        }
        Ok(Description(s.to_owned()))
    }
}

/// A duration in humantime's syntax (`90s`, `45m`, `1h 30m`), more than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub std::time::Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(HumanDuration(d)),
            Ok(_) => Err("the duration must be more than zero, e.g. 30m".to_owned()),
            Err(e) => Err(format!(
                "'{}' is not a duration ({e}); use e.g. 90s, 45m or 1h30m",
                shorten(s)
            )),
        }
    }
}

/// Requests a second, more than zero (`--max-rate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub f64);

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 10_000.0 => Ok(Rate(rate)),
            _ => Err(format!(
                "'{}' is not a rate: expected requests a second, more than 0 and at most 10000, e.g. 2 or 0.5",
                shorten(s)
            )),
        }
    }
}

/// An age such as `1d` or `12h`; unlike [`HumanDuration`], zero is allowed (`0s`: any age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age(pub std::time::Duration);

impl FromStr for Age {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s)
            .map(Age)
            .map_err(|e| format!("'{}' is not a duration ({e}); use e.g. 0s, 12h or 7d", shorten(s)))
    }
}

/// EC2 deprecates an image at most this long from now (public images: two years from their
/// creation, which EC2 checks).
const DEPRECATION_HORIZON: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 3653);

/// When to deprecate images (`deprecate --at`): a time to come, within ten years. RFC 3339
/// (`2027-01-31T12:00:00Z`) or a date (`2027-01-31`, midnight UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeprecateAt(pub jiff::Timestamp);

impl FromStr for DeprecateAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let at = s
            .parse::<jiff::Timestamp>()
            .or_else(|_| {
                s.parse::<jiff::civil::Date>()
                    .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight())))
            })
            .map_err(|_| {
                format!(
                    "'{}' is not a time: use a date (2027-01-31, midnight UTC) or RFC 3339 (2027-01-31T12:00:00Z)",
                    shorten(s)
                )
            })?;
        deprecation_within_horizon(jiff::Timestamp::now(), at).map(DeprecateAt)
    }
}

/// A deprecation time as EC2 keeps it: its seconds rounded to the nearest minute (the API
/// reference for EnableImageDeprecation).
pub fn deprecation_as_kept(at: jiff::Timestamp) -> jiff::Timestamp {
    let minute = (at.as_second() + 30).div_euclid(60);
    jiff::Timestamp::from_second(minute * 60).unwrap_or(at)
}

/// How long from now to deprecate images (`--in`, `create --deprecate-in`): within ten years.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeprecateIn(pub jiff::SignedDuration);

impl FromStr for DeprecateIn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lead = HumanDuration::from_str(s)?;
        let lead = jiff::SignedDuration::try_from(lead.0)
            .ok()
            .filter(|d| *d <= DEPRECATION_HORIZON)
            .ok_or_else(|| format!("'{}' is too far: EC2 deprecates at most ten years ahead", shorten(s)))?;
        Ok(DeprecateIn(lead))
    }
}

impl DeprecateIn {
    /// The moment this long after `now`.
    pub fn from(self, now: jiff::Timestamp) -> jiff::Timestamp {
        now.saturating_add(self.0).unwrap_or(now)
    }
}

/// `at`, if it is to come and within ten years of `now`.
fn deprecation_within_horizon(now: jiff::Timestamp, at: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    if at <= now {
        return Err(format!("{at} is in the past: a deprecation time must be to come"));
    }
    if at.duration_since(now) > DEPRECATION_HORIZON {
        return Err(format!("{at} is too far: EC2 deprecates at most ten years ahead"));
    }
    Ok(at)
}

/// An AWS region name such as `us-east-1` or `us-gov-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(String);

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // partition prefix, one or more words, a number: us-east-1, ap-southeast-2, us-isob-east-1
        let parts: Vec<&str> = s.split('-').collect();
        let well_formed = parts.len() >= 3
            && s.len() <= 32
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty();
        if well_formed {
            Ok(Region(s.to_owned()))
        } else {
            Err(format!(
                "'{}' is not an AWS region: expected a name such as us-east-1 or eu-west-2",
                shorten(s)
            ))
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An endpoint URL: `http` or `https` with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(String);

impl EndpointUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EndpointUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "'{}' is not an endpoint URL: {why}; expected e.g. https://ec2.us-east-1.amazonaws.com",
                shorten(&without_userinfo(s))
            )
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        Ok(EndpointUrl(s.trim_end_matches('/').to_owned()))
    }
}

/// Shown without any `user:password@` it carries: the URL goes to the SDK whole
/// ([`EndpointUrl::as_str`]), never into a message or a log.
impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&without_userinfo(&self.0))
    }
}

/// Any text with every URL's `user:password@` taken out: the last guard of every line amictl
/// writes to stderr (errors, warnings, notes, clap's usage errors, which echo the value).
pub fn scrub_userinfo(text: &str) -> std::borrow::Cow<'_, str> {
    static USERINFO: std::sync::LazyLock<regex_lite::Regex> = std::sync::LazyLock::new(|| {
        regex_lite::Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s'\x22@]*@").expect("a valid pattern")
    });
    USERINFO.replace_all(text, "$1")
}

/// An endpoint URL as it may be shown: without the `user:password@` it may carry. Text that
/// isn't a URL loses everything from `://` to the last `@` before the path, to be safe.
pub fn without_userinfo(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.username().is_empty() && parsed.password().is_none() {
            return url.to_owned();
        }
        if parsed.set_username("").is_ok() && parsed.set_password(None).is_ok() {
            let shown = parsed.to_string();
            return if url.ends_with('/') {
                shown
            } else {
                shown.trim_end_matches('/').to_owned()
            };
        }
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// A price in USD per GB-month: a finite, non-negative number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price(pub f64);

impl FromStr for Price {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => Ok(Price(p)),
            _ => Err(format!(
                "'{}' is not a price: expected a non-negative number of USD per GB-month, e.g. 0.05",
                shorten(s)
            )),
        }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `--kms-key-id`: a KMS key for the copies' snapshots, for every region (`alias/x`, a key ID)
/// or for one (`eu-west-1=alias/x`). A key ARN names its own region, which must be the one it
/// is used in: EC2 needs the key in the copy's region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    /// The region this key is for; `None`: every region.
    pub region: Option<Region>,
    pub key: String,
}

impl KmsKey {
    /// The region an ARN names (`arn:aws:kms:REGION:ACCOUNT:key/…`); `None` for key IDs and aliases.
    pub fn arn_region(&self) -> Option<&str> {
        let rest = self.key.strip_prefix("arn:")?;
        rest.split(':').nth(2)
    }
}

impl FromStr for KmsKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (region, key) = match s.split_once('=') {
            Some((region, key)) => (Some(region.parse::<Region>()?), key),
            None => (None, s),
        };
        let expected = "expected a key ID, alias/NAME, or a key or alias ARN, optionally after REGION= (e.g. eu-west-1=alias/images)";
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{}' is not a KMS key: {expected}", shorten(s)));
        }
        let kms = KmsKey {
            region,
            key: key.to_owned(),
        };
        if key.starts_with("arn:") {
            let parts: Vec<&str> = key.splitn(6, ':').collect();
            let well_formed = parts.len() == 6
                && parts[2] == "kms"
                && parts[3].parse::<Region>().is_ok()
                && parts[4].len() == 12
                && parts[4].bytes().all(|b| b.is_ascii_digit())
                && (parts[5].starts_with("key/") || parts[5].starts_with("alias/"));
            if !well_formed {
                return Err(format!("'{}' is not a KMS key ARN: {expected}", shorten(key)));
            }
            if let (Some(region), Some(arn_region)) = (&kms.region, kms.arn_region())
                && region.as_str() != arn_region
            {
                return Err(format!(
                    "the KMS key {} is in {arn_region}, not {region}: EC2 needs a key in the copy's own region",
                    shorten(key)
                ));
            }
        }
        Ok(kms)
    }
}

/// Each item once, in the order first given: a region or an image named twice is worked once.
pub fn each_once<T: Clone + Eq + std::hash::Hash>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|item| seen.insert(item.clone())).collect()
}

/// Keeps error messages one line long when someone pastes a novel into an option.
fn shorten(s: &str) -> String {
    const SHOWN: usize = 60;
    if s.chars().count() <= SHOWN {
        s.to_owned()
    } else {
        let head: String = s.chars().take(SHOWN).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn userinfo_never_shows() {
        assert_eq!(without_userinfo("http://u:p@10.0.0.1:4566"), "http://10.0.0.1:4566");
        assert_eq!(without_userinfo("https://u@host/path/"), "https://host/path/");
        assert_eq!(without_userinfo("http://host:80"), "http://host:80");
        assert_eq!(without_userinfo("http://u:p@"), "http://");
        assert_eq!(
            scrub_userinfo("invalid value 'http://ops:s3cret@' and https://a:b@h/x"),
            "invalid value 'http://' and https://h/x"
        );
        let url: EndpointUrl = "http://ops:s3cret@127.0.0.1:9".parse().unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:9");
        assert_eq!(url.as_str(), "http://ops:s3cret@127.0.0.1:9", "the SDK gets it whole");
    }

    use super::*;

    #[test]
    fn a_launch_template_is_named_by_its_id_or_a_name_ec2_takes() {
        let id: LaunchTemplateRef = "lt-0123456789abcdef0".parse().unwrap();
        assert_eq!(id, LaunchTemplateRef::Id("lt-0123456789abcdef0".to_owned()));
        let name: LaunchTemplateRef = "web/prod_(v2).x".parse().unwrap();
        assert_eq!(name, LaunchTemplateRef::Name("web/prod_(v2).x".to_owned()));
        for bad in ["", "ab", "web template", "web!", &"x".repeat(129)] {
            assert!(bad.parse::<LaunchTemplateRef>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_parameter_name_is_one_ssm_would_take() {
        for good in ["/golden/web", "golden-web", "/a/b.c/d_e-f", "/x/aws"] {
            assert_eq!(good.parse::<ParameterName>().unwrap().as_str(), good);
        }
        let deep = format!("/{}", ["l"; 16].join("/"));
        for (bad, why) in [
            ("", "1 to 1011"),
            ("golden/web", "starts with /"),
            ("/golden//web", "empty"),
            ("/golden/web/", "empty"),
            ("/golden web", "' ' is not allowed"),
            ("/aws/service/ami", "reserved"),
            ("SSM-thing", "reserved"),
            ("arn:aws:ssm:eu-west-1:123456789012:parameter/golden", "ARN"),
            (&deep, "15 levels"),
        ] {
            let err = bad.parse::<ParameterName>().unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_label_is_one_ssm_would_take() {
        assert_eq!("prod".parse::<ParameterLabel>().unwrap().as_str(), "prod");
        assert!("release-2.1_b".parse::<ParameterLabel>().is_ok());
        for bad in ["", "1st", "AWS-x", "ssm", "pro d", "p/q", &"x".repeat(101)] {
            assert!(bad.parse::<ParameterLabel>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_deprecation_time_is_to_come_and_within_ten_years() {
        let next_year = jiff::Timestamp::now()
            .saturating_add(jiff::SignedDuration::from_hours(24 * 365))
            .unwrap();
        let date = next_year.strftime("%Y-%m-%d").to_string();
        assert!(date.parse::<DeprecateAt>().is_ok(), "a date");
        assert!(next_year.to_string().parse::<DeprecateAt>().is_ok(), "RFC 3339");
        let past = "2020-01-01".parse::<DeprecateAt>().unwrap_err();
        assert!(past.contains("in the past"), "{past}");
        assert!("2999-01-01".parse::<DeprecateAt>().unwrap_err().contains("ten years"));
        assert!("tomorrow".parse::<DeprecateAt>().unwrap_err().contains("is not a time"));

        assert_eq!(
            "30d".parse::<DeprecateIn>().unwrap().0,
            jiff::SignedDuration::from_hours(720)
        );
        assert!("11years".parse::<DeprecateIn>().unwrap_err().contains("ten years"));
        assert!("99999999999999999999y".parse::<DeprecateIn>().is_err(), "overflow");
        assert!("0s".parse::<DeprecateIn>().is_err());
    }

    #[test]
    fn image_ids_have_eight_or_seventeen_lowercase_hex_digits() {
        assert!("ami-12345678".parse::<ImageId>().is_ok());
        assert!("ami-0123456789abcdef0".parse::<ImageId>().is_ok());
        for bad in [
            "",
            "ami-",
            "ami-1234567",
            "ami-123456789",
            "ami-0123456789ABCDEF0",
            "ami-0123456789abcdefg",
            "snap-12345678",
            "AMI-12345678",
            " ami-12345678",
        ] {
            assert!(bad.parse::<ImageId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn image_ids_are_found_in_ec2_messages() {
        let found = ImageId::find_in("The image id '[ami-1234abcd, ami-0123456789abcdef0]' does not exist");
        let found: Vec<&str> = found.iter().map(ImageId::as_str).collect();
        assert_eq!(found, ["ami-1234abcd", "ami-0123456789abcdef0"]);
    }

    #[test]
    fn owners_are_keywords_or_account_ids() {
        assert_eq!("self".parse::<Owner>().unwrap(), Owner::Me);
        assert_eq!("123456789012".parse::<Owner>().unwrap().as_api_value(), "123456789012");
        assert!("12345".parse::<Owner>().is_err());
        assert!("me".parse::<Owner>().is_err());
    }

    #[test]
    fn tags_need_a_key_and_an_equals_sign() {
        let tag: Tag = "team=web=blue".parse().unwrap();
        assert_eq!((tag.key.as_str(), tag.value.as_str()), ("team", "web=blue"));
        let empty_value: Tag = "team=".parse().unwrap();
        assert_eq!(empty_value.value, "");
        assert!("team".parse::<Tag>().is_err());
        assert!("=web".parse::<Tag>().is_err());
        assert!(format!("{}=v", "k".repeat(129)).parse::<Tag>().is_err());
        assert!(format!("k={}", "v".repeat(257)).parse::<Tag>().is_err());
    }

    #[test]
    fn name_globs_match_whole_names_and_know_what_ec2_understands() {
        let glob: NameGlob = "web-*".parse().unwrap();
        assert!(glob.is_match("web-2024/01"));
        assert!(!glob.is_match("my-web-1"));
        assert_eq!(glob.as_api_filter(), Some("web-*"));
        let local: NameGlob = "web-{a,b}".parse().unwrap();
        assert!(local.is_match("web-b"));
        assert_eq!(local.as_api_filter(), None);
        assert!("web-[".parse::<NameGlob>().is_err());
        assert!("".parse::<NameGlob>().is_err());
    }

    #[test]
    fn instance_ids_have_eight_or_seventeen_lowercase_hex_digits() {
        assert!("i-12345678".parse::<InstanceId>().is_ok());
        assert!("i-0123456789abcdef0".parse::<InstanceId>().is_ok());
        for bad in ["", "i-", "i-123", "ami-12345678", "i-0123456789ABCDEF0"] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn image_names_follow_ec2s_rules() {
        assert!(check_image_name("web (2024) [x] ./-'@_").is_ok());
        assert!(check_image_name("ab").is_err());
        assert!(check_image_name(&"a".repeat(129)).is_err());
        assert!(check_image_name(&"a".repeat(128)).is_ok());
        for bad in ["web:1", "web*", "wéb-1", "web,1", "web+1"] {
            assert!(check_image_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn name_templates_expand_known_placeholders_and_refuse_others() {
        let template: NameTemplate = "{instance_name}-{date}".parse().unwrap();
        let name = template
            .expand(|p| match p {
                Placeholder::InstanceName => Ok("web".to_owned()),
                Placeholder::Date => Ok("2026-11-28".to_owned()),
                other => Err(format!("{other:?} not expected")),
            })
            .unwrap();
        assert_eq!(name, "web-2026-11-28");
        assert!(
            "web-{version}"
                .parse::<NameTemplate>()
                .unwrap_err()
                .contains("unknown placeholder {version}")
        );
        assert!("web-{date".parse::<NameTemplate>().is_err());
        assert!("web-}".parse::<NameTemplate>().is_err());
        assert!(
            "web:{date}".parse::<NameTemplate>().is_err(),
            "bad text is refused before expanding"
        );
        assert!("ab".parse::<NameTemplate>().is_err());
        let bad_value: NameTemplate = "{instance_name}".parse().unwrap();
        assert!(
            bad_value.expand(|_| Ok("web*".to_owned())).is_err(),
            "expanded names are checked too"
        );
    }

    #[test]
    fn kms_keys_are_for_every_region_or_one_and_arns_name_their_own() {
        let any: KmsKey = "alias/images".parse().unwrap();
        assert_eq!((&any.region, any.arn_region()), (&None, None));
        let one: KmsKey = "eu-west-1=mrk-1234abcd".parse().unwrap();
        assert_eq!(one.region.unwrap().as_str(), "eu-west-1");
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(arn.parse::<KmsKey>().unwrap().arn_region(), Some("eu-west-1"));
        assert!(format!("eu-west-1={arn}").parse::<KmsKey>().is_ok());
        assert!(
            format!("us-east-1={arn}")
                .parse::<KmsKey>()
                .unwrap_err()
                .contains("is in eu-west-1, not us-east-1")
        );
        for bad in [
            "",
            "nowhere=alias/x",
            "eu-west-1=",
            "alias x",
            "arn:aws:kms:eu-west-1:1234:key/x",
            "arn:aws:s3:::bucket",
        ] {
            assert!(bad.parse::<KmsKey>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn shards_split_accounts_by_id_and_cover_each_once() {
        let accounts: Vec<AccountId> = (0..30)
            .map(|n| format!("{:012}", 111_111_111_111_u64 + n * 7919).parse().unwrap())
            .collect();
        let shards: Vec<Shard> = ["1/3", "2/3", "3/3"].iter().map(|s| s.parse().unwrap()).collect();
        for account in &accounts {
            assert_eq!(shards.iter().filter(|s| s.holds(account)).count(), 1, "{account}");
        }
        assert!("1/1".parse::<Shard>().unwrap().holds(&accounts[0]));
        for bad in ["0/2", "3/2", "1/0", "2", "a/b", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn role_arns_are_built_per_account_and_partition() {
        let account: AccountId = "111122223333".parse().unwrap();
        let name: RoleName = "ops/amictl".parse().unwrap();
        let arn = |region: &str| RoleArn::in_account(&account, &name, &region.parse().unwrap());
        assert_eq!(arn("eu-west-1").as_str(), "arn:aws:iam::111122223333:role/ops/amictl");
        assert_eq!(
            arn("cn-north-1").as_str(),
            "arn:aws-cn:iam::111122223333:role/ops/amictl"
        );
        assert_eq!(
            arn("us-gov-west-1").as_str(),
            "arn:aws-us-gov:iam::111122223333:role/ops/amictl"
        );
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("il-central-1", "aws"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-east-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            let built = arn(region);
            assert_eq!(
                built.as_str(),
                format!("arn:{partition}:iam::111122223333:role/ops/amictl"),
                "{region}"
            );
            assert!(built.as_str().parse::<RoleArn>().is_ok(), "{region}: accepted back");
        }
        assert!(arn("eu-west-1").as_str().parse::<RoleArn>().is_ok(), "a valid ARN");
        for bad in ["", "a b", "x//y", &"r".repeat(65)] {
            assert!(bad.parse::<RoleName>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn timeouts_use_humantime_and_are_positive() {
        assert_eq!("90s".parse::<HumanDuration>().unwrap().0.as_secs(), 90);
        assert_eq!("1h 30m".parse::<HumanDuration>().unwrap().0.as_secs(), 5400);
        assert!("0s".parse::<HumanDuration>().is_err());
        assert!("soon".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn organization_and_ou_arns_follow_their_formats() {
        let org = "arn:aws:organizations::123456789012:organization/o-abcdefghij";
        let ou = "arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-cdefgh34";
        assert!(org.parse::<OrgArn>().is_ok());
        assert!(ou.parse::<OuArn>().is_ok());
        assert!(org.parse::<OuArn>().is_err());
        assert!(ou.parse::<OrgArn>().is_err());
        for bad in [
            "arn:aws:organizations::12345:organization/o-abcdefghij",
            "arn:aws:organizations::123456789012:organization/o-abc",
            "arn:aws:organizations::123456789012:organization/o-ABCDEFGHIJ",
            "arn:aws:iam::123456789012:organization/o-abcdefghij",
            "o-abcdefghij",
        ] {
            assert!(bad.parse::<OrgArn>().is_err(), "{bad}");
        }
        for bad in [
            "arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab-cdefgh34",
            "arn:aws:organizations::123456789012:ou/o-abcdefghij",
            "arn:aws:organizations::123456789012:ou/ou-ab12-cdefgh34",
        ] {
            assert!(bad.parse::<OuArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn role_arns_name_their_account() {
        let role: RoleArn = "arn:aws:iam::111122223333:role/ops/amictl-cleanup".parse().unwrap();
        assert_eq!(role.account_id().as_str(), "111122223333");
        for bad in [
            "arn:aws:iam::1111:role/x",
            "arn:aws:iam::111122223333:user/x",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:s3::111122223333:role/x",
            "role/x",
        ] {
            assert!(bad.parse::<RoleArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_look_like_regions() {
        for good in [
            "us-east-1",
            "eu-west-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "us-isob-east-1",
        ] {
            assert!(good.parse::<Region>().is_ok(), "{good} was refused");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "us-east-1a",
            "-east-1",
            "us--1",
        ] {
            assert!(bad.parse::<Region>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn endpoint_urls_need_http_and_a_host() {
        assert_eq!(
            "http://127.0.0.1:5000/".parse::<EndpointUrl>().unwrap().as_str(),
            "http://127.0.0.1:5000"
        );
        for bad in ["127.0.0.1:5000", "ftp://example.com", "http://", "not a url"] {
            assert!(bad.parse::<EndpointUrl>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prices_are_finite_and_not_negative() {
        assert!("0".parse::<Price>().is_ok());
        assert!("0.023".parse::<Price>().is_ok());
        for bad in ["-1", "NaN", "inf", "cheap"] {
            assert!(bad.parse::<Price>().is_err(), "{bad:?} was accepted");
        }
    }
}

/// Types that are written as the text a user would type (saved plans hold them): serialized
/// with `Display`, read back through the same `FromStr` as the command line.
macro_rules! serde_as_typed_text {
    ($($ty:ty),*) => {$(
        impl ::serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

pub(crate) use serde_as_typed_text;

serde_as_typed_text!(ImageId, SnapshotId, Tag, NameGlob, Region, AccountId);
