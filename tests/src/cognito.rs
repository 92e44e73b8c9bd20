//! A local user pool and real sign-ups through the Cognito API.
//!
//! moto does not invoke the Post Confirmation trigger when a user is confirmed, so
//! [`post_confirmation_event`] builds the event Cognito would send from the confirmed user's
//! attributes, as read back with `AdminGetUser`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, AttributeType, SchemaAttributeType, StringAttributeConstraintsType,
    VerifiedAttributeType,
};
use serde_json::{Value, json};

/// Custom attributes of the local pool, as an application would declare them.
pub const CUSTOM_ATTRIBUTES: [&str; 2] = ["plan", "tenant_id"];

pub struct UserPool {
    pub id: String,
    pub client_id: String,
}

/// Creates a pool with email auto-verification and the custom attributes, and an app client.
pub async fn create_user_pool(cognito: &Client, name: &str) -> Result<UserPool> {
    let mut create = cognito
        .create_user_pool()
        .pool_name(name)
        .auto_verified_attributes(VerifiedAttributeType::Email);
    for attribute in CUSTOM_ATTRIBUTES {
        create = create.schema(
            SchemaAttributeType::builder()
                .name(attribute)
                .attribute_data_type(AttributeDataType::String)
                .mutable(true)
                .string_attribute_constraints(
                    StringAttributeConstraintsType::builder()
                        .min_length("0")
                        .max_length("256")
                        .build(),
                )
                .build(),
        );
    }
    let pool = create.send().await.context("CreateUserPool failed")?;
    let id = pool
        .user_pool()
        .and_then(|p| p.id())
        .context("pool without id")?
        .to_owned();
    let client = cognito
        .create_user_pool_client()
        .user_pool_id(&id)
        .client_name("local-app")
        .send()
        .await
        .context("CreateUserPoolClient failed")?;
    let client_id = client
        .user_pool_client()
        .and_then(|c| c.client_id())
        .context("client without id")?
        .to_owned();
    Ok(UserPool { id, client_id })
}

/// Signs a user up through the app client and confirms them as an administrator would after the
/// code check, marking the email verified. Returns the user's attributes as Cognito stores them.
pub async fn sign_up_and_confirm(
    cognito: &Client,
    pool: &UserPool,
    username: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut sign_up = cognito
        .sign_up()
        .client_id(&pool.client_id)
        .username(username)
        .password("Correct-Horse-9-Battery!");
    for (name, value) in attributes {
        sign_up = sign_up.user_attributes(AttributeType::builder().name(name).value(value).build()?);
    }
    sign_up.send().await.context("SignUp failed")?;
    cognito
        .admin_confirm_sign_up()
        .user_pool_id(&pool.id)
        .username(username)
        .send()
        .await
        .context("AdminConfirmSignUp failed")?;
    if attributes.contains_key("email") {
        cognito
            .admin_update_user_attributes()
            .user_pool_id(&pool.id)
            .username(username)
            .user_attributes(
                AttributeType::builder()
                    .name("email_verified")
                    .value("true")
                    .build()?,
            )
            .send()
            .await
            .context("AdminUpdateUserAttributes failed")?;
    }
    let user = cognito
        .admin_get_user()
        .user_pool_id(&pool.id)
        .username(username)
        .send()
        .await
        .context("AdminGetUser failed")?;
    Ok(user
        .user_attributes()
        .iter()
        .map(|a| (a.name().to_owned(), a.value().unwrap_or_default().to_owned()))
        .collect())
}

/// The Post Confirmation event Cognito sends for `trigger_source`.
pub fn post_confirmation_event(
    pool: &UserPool,
    username: &str,
    attributes: &BTreeMap<String, String>,
    trigger_source: &str,
) -> Value {
    let mut user_attributes = attributes.clone();
    user_attributes.insert("cognito:user_status".into(), "CONFIRMED".into());
    json!({
        "version": "1",
        "region": "us-east-1",
        "userPoolId": pool.id,
        "userName": username,
        "callerContext": {
            "awsSdkVersion": "aws-sdk-unknown-unknown",
            "clientId": pool.client_id,
        },
        "triggerSource": trigger_source,
        "request": {
            "userAttributes": user_attributes,
            "clientMetadata": {},
        },
        "response": {},
    })
}
