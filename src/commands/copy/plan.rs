//! What to do in each target region, decided from what the reads found: no I/O here.

use std::collections::BTreeMap;

use crate::ec2::RegionInfo;
use crate::model::{Image, ImageState, SOURCE_IMAGE_TAG, SOURCE_REGION_TAG};
use crate::types::{ImageId, KmsKey, Region, Tag};

/// EC2 takes at most 50 tags on a resource.
const MAX_TAGS: usize = 50;

/// What to do in one target region.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Copied there before, in a state other than failed: nothing to copy.
    Reuse(Box<Image>),
    /// Copy, for the first time or again after these earlier copies failed.
    Copy { failed_before: Vec<ImageId> },
    /// Can't be copied there, for this reason; nothing is asked of that region.
    Refuse(String),
}

/// Whether EC2 lets the account copy into `region`, by DescribeRegions' answer (`None`: it
/// could not be read, so the copy is tried and EC2 answers).
pub fn region_refusal(region: &Region, source_region: &Region, regions: Option<&[RegionInfo]>) -> Option<String> {
    let known = regions?;
    match known.iter().find(|r| r.name == region.as_str()) {
        None => Some(format!(
            "EC2 knows no region {region} (DescribeRegions in {source_region} does not list it); check the name"
        )),
        Some(info) if !info.is_enabled() => Some(format!(
            "{region} is not enabled for the account (opt-in status {}); enable it in the account's settings, or leave it out",
            info.opt_in_status.as_deref().unwrap_or("unknown")
        )),
        Some(_) => None,
    }
}

/// What a copy in one region must be for an earlier one to be reused.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub source: &'a ImageId,
    pub source_region: &'a Region,
    /// `--encrypt`: every EBS volume of the copy encrypted…
    pub encrypt: bool,
    /// …with this key (`None`: the account's default one).
    pub kms_key: Option<&'a str>,
}

/// When the copies are deprecated: as asked, or at the source's time. EC2 refuses a time
/// that has passed, so a source deprecated already gives copies deprecated at the next minute
/// (EC2 keeps deprecation times to the minute).
pub fn deprecation_of_copies(
    asked: super::Deprecation,
    source: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    let at = match asked {
        super::Deprecation::Unset => return None,
        super::Deprecation::In(lead) => now + lead,
        super::Deprecation::AsTheSource => source?,
    };
    let next_minute = || {
        let minute = now.as_second().div_euclid(60) + 1;
        jiff::Timestamp::from_second(minute * 60).unwrap_or(now)
    };
    let kept = crate::types::deprecation_as_kept(at);
    Some(if kept <= now { next_minute() } else { kept })
}

/// The step in one region, from the copies made there before (found by their source tags)
/// and the account's images there with the copy's name.
pub fn decide(earlier: &[Image], named: &[Image], name: &str, region: &Region, wanted: &Wanted<'_>) -> Step {
    let failed = |image: &Image| image.state.as_ref().is_some_and(ImageState::is_failed);
    // Newest first: the most recent copy that is not a failure is the one to keep using.
    let mut earlier: Vec<&Image> = earlier.iter().collect();
    earlier.sort_by(|a, b| Image::newest_first(a, b));
    if let Some(copy) = earlier.iter().find(|image| !failed(image)) {
        if copy.is_disabled() {
            // Someone retired it: copying again would undo that behind their back.
            return Step::Refuse(format!(
                "the copy in {region} ({}) is disabled; enable it (`amictl enable`) or deregister it, then copy again",
                copy.image_id
            ));
        }
        if let Some(why) = not_what_was_asked(copy, region, wanted) {
            return Step::Refuse(why);
        }
        return Step::Reuse(Box::new((*copy).clone()));
    }
    if let Some(taken) = named
        .iter()
        .find(|image| !earlier.iter().any(|e| e.image_id == image.image_id))
    {
        return Step::Refuse(format!(
            "the account has an image named '{name}' in {region} already ({}), which is not a copy of this source; \
             pass --name to give the copy another name",
            taken.image_id
        ));
    }
    Step::Copy {
        failed_before: earlier.iter().map(|image| image.image_id.clone()).collect(),
    }
}

/// Whether an image found by amictl's source tags (which anyone can write) is a copy of the
/// source as far as EC2 tells: its `SourceImageId` and `SourceImageRegion`, where EC2 reports
/// them, name the source.
pub fn copied_from(copy: &Image, source: &ImageId, source_region: &Region) -> bool {
    copy.source_image_id.as_deref().is_none_or(|id| id == source.as_str())
        && (copy.source_image_region.as_deref()).is_none_or(|r| r == source_region.as_str())
}

/// Why an earlier copy (found by amictl's tags, which anyone can write) is not the copy asked
/// for now: EC2 reports another source for it, or it isn't encrypted as asked.
fn not_what_was_asked(copy: &Image, region: &Region, wanted: &Wanted<'_>) -> Option<String> {
    let id = &copy.image_id;
    let deregister = format!("deregister it (`amictl deregister {id} --region {region}`) and copy again");
    if let Some(source) = copy.source_image_id.as_deref()
        && !copied_from(copy, wanted.source, wanted.source_region)
    {
        return Some(format!(
            "{id} in {region} carries amictl's tags of a copy of {} ({}), but EC2 says it was copied from {source}{}: it is not a copy of this source; remove its amictl:source-* tags, or {deregister}",
            wanted.source,
            wanted.source_region,
            copy.source_image_region
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if !wanted.encrypt {
        return None;
    }
    let volumes: Vec<_> = copy.block_devices.iter().filter(|d| d.is_ebs()).collect();
    if let Some(plain) = volumes.iter().find(|d| d.encrypted != Some(true)) {
        return Some(format!(
            "the copy made before in {region} ({id}) has an unencrypted volume ({}), and --encrypt asks for an encrypted copy; {deregister}",
            plain.device_name.as_deref().unwrap_or("a device")
        ));
    }
    let asked = wanted.kms_key?;
    let recorded = copy.tags.get(KMS_KEY_TAG).map(String::as_str);
    for device in volumes {
        let used = device.kms_key_id.as_deref().unwrap_or("the account's default key");
        let same = match key_id_of(asked) {
            // A key ID or key ARN: EC2's answer tells.
            Some(asked_id) => device.kms_key_id.as_deref().and_then(key_id_of) == Some(asked_id),
            // An alias: EC2 reports the key behind it, which only KMS could tell; amictl's
            // record of the key asked for at the copy stands in.
            None => recorded == Some(asked),
        };
        if !same {
            return Some(format!(
                "the copy made before in {region} ({id}) is encrypted with {used}{}, not the key asked for ({asked}); {deregister}",
                recorded.map(|r| format!(" (asked as {r})")).unwrap_or_default()
            ));
        }
    }
    None
}

/// The key ID in a key ID or key ARN (`arn:…:key/ID`); `None` for an alias.
fn key_id_of(key: &str) -> Option<&str> {
    if key.starts_with("alias/") || key.contains(":alias/") {
        return None;
    }
    Some(key.rsplit_once(":key/").map_or(key, |(_, id)| id))
}

/// On a copy amictl made with a key named: the key as asked (`--kms-key-id`), for a re-run
/// that names it by alias, which EC2's answer (the key's ARN) doesn't show.
pub const KMS_KEY_TAG: &str = "amictl:kms-key-id";

/// The copy's tags: the source's own with `--copy-tags` (not AWS's `aws:` tags, nor amictl's
/// records of the source's stage, which would be false of the copy), then `--tag`, then the two
/// tags a re-run finds the copy by.
pub fn copy_tags(
    source: &Image,
    copy_source_tags: bool,
    tags: &BTreeMap<String, String>,
    records_key: bool,
) -> Result<BTreeMap<String, String>, String> {
    let mut wanted = BTreeMap::new();
    if copy_source_tags {
        wanted.extend(
            source
                .tags
                .iter()
                .filter(|(key, _)| !key.starts_with("aws:") && !Tag::is_amictls(key))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    wanted.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    wanted.insert(SOURCE_IMAGE_TAG.to_owned(), source.image_id.to_string());
    wanted.insert(SOURCE_REGION_TAG.to_owned(), source.region.to_string());
    // With a KMS key named, each copy also records the key asked for (KMS_KEY_TAG).
    let total = wanted.len() + usize::from(records_key);
    if total > MAX_TAGS {
        return Err(format!(
            "the copies would have {total} tags, and EC2 takes at most {MAX_TAGS} ({} of them amictl's record of the source{}); \
             copy fewer of the source's tags, or pass fewer --tag",
            total - (wanted.len() - 2),
            if records_key { " and the key" } else { "" }
        ));
    }
    Ok(wanted)
}

/// The tags of `wanted` that the image lacks or has with another value.
pub fn missing_tags(image: &Image, wanted: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    wanted
        .iter()
        .filter(|(k, v)| image.tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The key to encrypt a copy in `region` with: the one named for the region, else the one
/// named for every region, else none (the account's default EBS key).
pub fn kms_key_for<'k>(keys: &'k [KmsKey], region: &Region) -> Option<&'k str> {
    keys.iter()
        .find(|k| k.region.as_ref() == Some(region))
        .or_else(|| keys.iter().find(|k| k.region.is_none()))
        .map(|k| k.key.as_str())
}

/// Keys that can't work with these target regions: one named for a region not copied to, or
/// an ARN (which names its region) used where it isn't.
pub fn kms_refusal(keys: &[KmsKey], targets: &[Region]) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    for key in keys {
        if !seen.insert(key.region.as_ref().map(Region::as_str)) {
            return Some(match &key.region {
                Some(region) => format!("--kms-key-id names {region} twice; give each region one key"),
                None => {
                    "--kms-key-id gives two keys for every region; give one, or name each key's region (REGION=KEY)"
                        .to_owned()
                }
            });
        }
        if let Some(region) = &key.region
            && !targets.contains(region)
        {
            return Some(format!(
                "--kms-key-id names {region}, which is not copied to; leave it out or add it to the regions"
            ));
        }
    }
    for region in targets {
        if let Some(key) = kms_key_for(keys, region).and_then(|k| keys.iter().find(|x| x.key == k))
            && let Some(arn_region) = key.arn_region()
            && arn_region != region.as_str()
        {
            return Some(format!(
                "the KMS key {} is in {arn_region}, so it can't encrypt the copy in {region}; name a key per region (REGION=KEY)",
                key.key
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> Region {
        name.parse().unwrap()
    }

    fn image(id: &str, state: &str, created: &str) -> Image {
        let mut image = Image::for_tests(id);
        image.state = Some(ImageState::parse(state));
        image.creation_date = Some(created.parse().unwrap());
        image
    }

    #[test]
    fn copies_are_deprecated_as_asked_and_never_in_the_past() {
        use super::super::Deprecation;
        let now: jiff::Timestamp = "2026-11-30T12:00:30Z".parse().unwrap();
        let later: jiff::Timestamp = "2027-02-28T12:00:00Z".parse().unwrap();
        let past: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            deprecation_of_copies(Deprecation::AsTheSource, Some(later), now),
            Some(later)
        );
        assert_eq!(deprecation_of_copies(Deprecation::AsTheSource, None, now), None);
        assert_eq!(deprecation_of_copies(Deprecation::Unset, Some(later), now), None);
        let in_a_day = deprecation_of_copies(Deprecation::In(jiff::SignedDuration::from_hours(24)), None, now);
        assert_eq!(
            in_a_day,
            Some("2026-12-01T12:01:00Z".parse().unwrap()),
            "as EC2 keeps it"
        );
        // A source deprecated already: EC2 refuses a time gone by, so the next minute.
        let next_minute = "2026-11-30T12:01:00Z".parse().unwrap();
        assert_eq!(
            deprecation_of_copies(Deprecation::AsTheSource, Some(past), now),
            Some(next_minute)
        );
    }

    #[test]
    fn a_region_must_be_known_and_enabled_unless_the_list_could_not_be_read() {
        let regions = [
            RegionInfo {
                name: "eu-west-1".to_owned(),
                opt_in_status: Some("opt-in-not-required".to_owned()),
            },
            RegionInfo {
                name: "ap-east-1".to_owned(),
                opt_in_status: Some("not-opted-in".to_owned()),
            },
        ];
        assert_eq!(
            region_refusal(&region("eu-west-1"), &region("us-east-1"), Some(&regions)),
            None
        );
        let not_enabled = region_refusal(&region("ap-east-1"), &region("us-east-1"), Some(&regions)).unwrap();
        assert!(not_enabled.contains("not enabled"), "{not_enabled}");
        let unknown = region_refusal(&region("eu-wset-1"), &region("us-east-1"), Some(&regions)).unwrap();
        assert!(unknown.contains("EC2 knows no region eu-wset-1"), "{unknown}");
        assert_eq!(region_refusal(&region("eu-wset-1"), &region("us-east-1"), None), None);
    }

    #[test]
    fn an_earlier_copy_is_reused_unless_it_failed_and_a_name_taken_by_another_image_refuses() {
        let eu = region("eu-west-1");
        let pending = image("ami-00000000000000001", "pending", "2026-11-01T00:00:00Z");
        let failed = image("ami-00000000000000002", "failed", "2026-11-02T00:00:00Z");
        let other = image("ami-00000000000000003", "available", "2026-10-01T00:00:00Z");

        assert_eq!(
            decide(&[failed.clone(), pending.clone()], &[], "web", &eu, &plain()),
            Step::Reuse(Box::new(pending.clone())),
            "the newest copy that did not fail"
        );
        assert_eq!(
            decide(
                std::slice::from_ref(&failed),
                std::slice::from_ref(&failed),
                "web",
                &eu,
                &plain()
            ),
            Step::Copy {
                failed_before: vec![failed.image_id.clone()]
            },
            "a failed copy is copied again; its name is its own"
        );
        assert_eq!(
            decide(&[], &[], "web", &eu, &plain()),
            Step::Copy { failed_before: vec![] }
        );
        let disabled = image("ami-00000000000000004", "disabled", "2026-11-03T00:00:00Z");
        let Step::Refuse(why) = decide(&[pending.clone(), disabled], &[], "web", &eu, &plain()) else {
            panic!("a disabled copy is neither reused nor copied again");
        };
        assert!(why.contains("is disabled"), "{why}");
        let Step::Refuse(why) = decide(&[], &[other], "web", &eu, &plain()) else {
            panic!("a name taken by an image that is no copy of the source");
        };
        assert!(why.contains("ami-00000000000000003") && why.contains("--name"), "{why}");
    }

    const SOURCE: &str = "ami-0123456789abcdef0";

    fn plain() -> Wanted<'static> {
        static ID: std::sync::LazyLock<ImageId> = std::sync::LazyLock::new(|| ImageId::from_ec2(SOURCE));
        static US_EAST_1: std::sync::LazyLock<Region> = std::sync::LazyLock::new(|| "us-east-1".parse().unwrap());
        Wanted {
            source: &ID,
            source_region: &US_EAST_1,
            encrypt: false,
            kms_key: None,
        }
    }

    /// amictl's tags can be written by anyone; what EC2 reports of a copy, and how it is
    /// encrypted, decide whether it is the copy asked for now.
    #[test]
    fn an_earlier_copy_is_reused_only_if_ec2_says_it_is_one_and_it_is_encrypted_as_asked() {
        let eu = region("eu-west-1");
        let mut copy = image("ami-00000000000000001", "available", "2026-11-01T00:00:00Z");
        copy.source_image_id = Some(SOURCE.to_owned());
        copy.source_image_region = Some("us-east-1".to_owned());
        assert!(matches!(
            decide(std::slice::from_ref(&copy), &[], "web", &eu, &plain()),
            Step::Reuse(_)
        ));

        let mut impostor = copy.clone();
        impostor.source_image_id = Some("ami-0fedcba9876543210".to_owned());
        let Step::Refuse(why) = decide(&[impostor], &[], "web", &eu, &plain()) else {
            panic!("EC2 names another source");
        };
        assert!(
            why.contains("EC2 says it was copied from ami-0fedcba9876543210"),
            "{why}"
        );

        let encrypt = |key: Option<&'static str>| Wanted {
            encrypt: true,
            kms_key: key,
            ..plain()
        };
        let Step::Refuse(why) = decide(std::slice::from_ref(&copy), &[], "web", &eu, &encrypt(None)) else {
            panic!("an unencrypted copy, --encrypt asked");
        };
        assert!(
            why.contains("unencrypted") && why.contains("amictl deregister"),
            "{why}"
        );

        let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        copy.block_devices[0].encrypted = Some(true);
        copy.block_devices[0].kms_key_id = Some(arn.to_owned());
        for (asked, reused) in [
            (None, true),
            (Some(arn), true),
            (Some("1234abcd-12ab-34cd-56ef-1234567890ab"), true),
            (Some("0000abcd-12ab-34cd-56ef-1234567890ab"), false),
            (Some("alias/images"), false),
        ] {
            let step = decide(std::slice::from_ref(&copy), &[], "web", &eu, &encrypt(asked));
            assert_eq!(matches!(step, Step::Reuse(_)), reused, "{asked:?}: {step:?}");
        }
        copy.tags.insert(KMS_KEY_TAG.to_owned(), "alias/images".to_owned());
        let step = decide(
            std::slice::from_ref(&copy),
            &[],
            "web",
            &eu,
            &encrypt(Some("alias/images")),
        );
        assert!(matches!(step, Step::Reuse(_)), "the alias asked for then: {step:?}");
    }

    #[test]
    fn copied_tags_leave_out_aws_and_amictl_records_and_the_source_tags_always_go_on() {
        let mut source = Image::for_tests("ami-0123456789abcdef0");
        source.region = "us-east-1".parse().unwrap();
        source.tags = [
            ("team", "web"),
            ("env", "old"),
            ("aws:cloudformation:stack-name", "s"),
            ("amictl:disabled-at", "2026-01-01T00:00:00Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let given = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);

        let tags = copy_tags(&source, true, &given, false).unwrap();

        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            tags,
            [
                ("amictl:source-image-id", "ami-0123456789abcdef0"),
                ("amictl:source-region", "us-east-1"),
                ("env", "prod"),
                ("team", "web"),
            ]
        );
        assert_eq!(copy_tags(&source, false, &BTreeMap::new(), false).unwrap().len(), 2);
        let many: BTreeMap<String, String> = (0..49).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(
            copy_tags(&source, false, &many, false)
                .unwrap_err()
                .contains("at most 50")
        );
        let just_fits: BTreeMap<String, String> = (0..48).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(copy_tags(&source, false, &just_fits, false).is_ok());
        let key_too = copy_tags(&source, false, &just_fits, true).unwrap_err();
        assert!(
            key_too.contains("51 tags") && key_too.contains("and the key"),
            "{key_too}"
        );
    }

    #[test]
    fn kms_keys_go_to_their_region_and_refuse_what_cannot_work() {
        let keys: Vec<KmsKey> = ["alias/all", "eu-west-1=alias/eu"]
            .iter()
            .map(|k| k.parse().unwrap())
            .collect();
        assert_eq!(kms_key_for(&keys, &region("eu-west-1")), Some("alias/eu"));
        assert_eq!(kms_key_for(&keys, &region("us-west-2")), Some("alias/all"));
        assert_eq!(kms_key_for(&[], &region("us-west-2")), None);

        let targets = [region("eu-west-1"), region("us-west-2")];
        assert_eq!(kms_refusal(&keys, &targets), None);
        let elsewhere: Vec<KmsKey> = vec!["ap-south-1=alias/x".parse().unwrap()];
        assert!(kms_refusal(&elsewhere, &targets).unwrap().contains("not copied to"));
        let twice: Vec<KmsKey> = vec!["alias/a".parse().unwrap(), "alias/b".parse().unwrap()];
        assert!(kms_refusal(&twice, &targets).unwrap().contains("two keys"));
        let arn: Vec<KmsKey> = vec!["arn:aws:kms:eu-west-1:123456789012:alias/x".parse().unwrap()];
        assert!(
            kms_refusal(&arn, &targets)
                .unwrap()
                .contains("can't encrypt the copy in us-west-2")
        );
        assert_eq!(kms_refusal(&arn, &targets[..1]), None);
    }
}
