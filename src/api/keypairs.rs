//! CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair.
//!
//! The private key of CreateKeyPair is in the answer and nowhere else: it is
//! not stored, and request logs never contain bodies. `KeyType` rsa (the
//! default, as in EC2) or ed25519, `KeyFormat` pem or ppk; ImportKeyPair's
//! `PublicKeyMaterial` is base64 of an OpenSSH public key line (what
//! `fileb://key.pub` sends); bad material is `InvalidKey.Format`.

use super::tags::{check_filter_names, tag_filter_values, tag_specifications, write_tags};
use super::{dry_run_check, Context};
use crate::compute::keymaterial::{KeyFormat, KeyType};
use crate::compute::keypairs::KeyPair;
use crate::error::{ApiError, ApiResult};
use crate::protocol::filters::matches_all;
use crate::protocol::xml::{XmlOutput, XmlWriter};
use crate::protocol::{Filter, Params};
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

#[derive(Debug)]
pub struct CreateKeyPair {
    pub key_name: String,
    pub key_type: KeyType,
    pub key_format: KeyFormat,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl CreateKeyPair {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            key_name: params.required("KeyName")?,
            key_type: params
                .optional("KeyType")
                .map(|t| KeyType::parse(&t))
                .transpose()?
                .unwrap_or(KeyType::Rsa),
            key_format: params
                .optional("KeyFormat")
                .map(|f| KeyFormat::parse(&f))
                .transpose()?
                .unwrap_or(KeyFormat::Pem),
            tags: tag_specifications(params, "key-pair")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedKeyPair> {
        let (pair, material) = context
            .compute
            .create_key_pair(
                &context.principal.account_id,
                &self.key_name,
                self.key_type,
                self.key_format,
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(CreatedKeyPair { pair, material })
    }
}

/// The new pair with its private key.
#[derive(Debug)]
pub struct CreatedKeyPair {
    pair: KeyPair,
    material: Secret,
}

impl XmlOutput for CreatedKeyPair {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("keyPairId", &self.pair.id);
        write_tags(xml, &self.pair.tags);
        xml.element("keyName", &self.pair.name);
        xml.element("keyFingerprint", &self.pair.fingerprint);
        xml.element("keyMaterial", self.material.expose());
    }
}

#[derive(Debug)]
pub struct ImportKeyPair {
    pub key_name: String,
    pub material: Vec<u8>,
    pub tags: Vec<crate::compute::instances::Tag>,
    pub dry_run: bool,
}

impl ImportKeyPair {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let encoded = params.required("PublicKeyMaterial")?;
        let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
        let material = STANDARD.decode(compact).map_err(|_| ApiError::Malformed {
            code: crate::error::codes::INVALID_KEY_FORMAT,
            message: "PublicKeyMaterial is not valid base64".into(),
        })?;
        Ok(Self {
            key_name: params.required("KeyName")?,
            material,
            tags: tag_specifications(params, "key-pair")?,
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ImportedKeyPair> {
        let pair = context
            .compute
            .import_key_pair(
                &context.principal.account_id,
                &self.key_name,
                &self.material,
                self.tags,
                self.dry_run,
            )
            .await?;
        Ok(ImportedKeyPair(pair))
    }
}

#[derive(Debug)]
pub struct ImportedKeyPair(KeyPair);

impl XmlOutput for ImportedKeyPair {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.element("keyFingerprint", &self.0.fingerprint);
        xml.element("keyName", &self.0.name);
        xml.element("keyPairId", &self.0.id);
        write_tags(xml, &self.0.tags);
    }
}

const KEY_PAIR_FILTERS: &[&str] = &[
    "key-pair-id",
    "key-name",
    "fingerprint",
    "key-type",
    "tag-key",
    "tag-value",
];

#[derive(Debug)]
pub struct DescribeKeyPairs {
    pub key_names: Vec<String>,
    pub key_pair_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub include_public_key: bool,
    pub dry_run: bool,
}

impl DescribeKeyPairs {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let request = Self {
            key_names: params.list("KeyName")?,
            key_pair_ids: params.list("KeyPairId")?,
            filters: params.filters()?,
            include_public_key: params.boolean("IncludePublicKey")?.unwrap_or(false),
            dry_run: params.dry_run()?,
        };
        check_filter_names(&request.filters, KEY_PAIR_FILTERS)?;
        Ok(request)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<KeyPairList> {
        let pairs = context
            .compute
            .find_key_pairs(
                &context.principal.account_id,
                &self.key_names,
                &self.key_pair_ids,
            )
            .await?;
        dry_run_check(self.dry_run)?;
        let pairs = pairs
            .into_iter()
            .filter(|pair| {
                matches_all(&self.filters, |name| {
                    tag_filter_values(&pair.tags, name).unwrap_or_else(|| match name {
                        "key-pair-id" => vec![pair.id.clone()],
                        "key-name" => vec![pair.name.clone()],
                        "fingerprint" => vec![pair.fingerprint.clone()],
                        _ => vec![pair.key_type.as_str().to_string()],
                    })
                })
            })
            .collect();
        Ok(KeyPairList {
            pairs,
            include_public_key: self.include_public_key,
        })
    }
}

#[derive(Debug)]
pub struct KeyPairList {
    pairs: Vec<KeyPair>,
    include_public_key: bool,
}

impl XmlOutput for KeyPairList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("keySet", &self.pairs, |xml, pair| {
            xml.element("keyPairId", &pair.id);
            xml.element("keyType", pair.key_type.as_str());
            write_tags(xml, &pair.tags);
            if self.include_public_key {
                xml.element("publicKey", &pair.public_key);
            }
            xml.timestamp("createTime", pair.created_at);
            xml.element("keyName", &pair.name);
            xml.element("keyFingerprint", &pair.fingerprint);
        });
    }
}

#[derive(Debug)]
pub struct DeleteKeyPair {
    pub key_name: Option<String>,
    pub key_pair_id: Option<String>,
    pub dry_run: bool,
}

impl DeleteKeyPair {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            key_name: params.optional("KeyName"),
            key_pair_id: params.optional("KeyPairId"),
            dry_run: params.dry_run()?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<DeletedKeyPair> {
        let id = context
            .compute
            .delete_key_pair(
                &context.principal.account_id,
                self.key_name.as_deref(),
                self.key_pair_id.as_deref(),
                self.dry_run,
            )
            .await?;
        Ok(DeletedKeyPair(id))
    }
}

#[derive(Debug)]
pub struct DeletedKeyPair(Option<String>);

impl XmlOutput for DeletedKeyPair {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.boolean("return", true);
        xml.optional("keyPairId", self.0.as_deref());
    }
}
