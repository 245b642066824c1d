// Key Vault holding the audit digest signing key (docs/audit-format.md, section 4).
//
// The `seal_audit_digest` timer signs each digest with an EC P-256 key (ES256) that never leaves
// the vault; the app publishes the matching public key as v1/keys/KEYID.pem in the audit container.
// Besides the key it holds at most the change systems' callback HMAC secrets, which an operator adds
// (docs/operations.md, "Change-system callbacks"): one app, one environment (Microsoft's "vault per
// application per environment" guidance), so whoever administers it administers only this app's secrets.
//
// Access is Azure RBAC only (no access policies); the app's grants are "Key Vault Crypto User" on the
// key itself and, when callbacks are configured, "Key Vault Secrets User" on that one secret
// (rbac.bicep). Soft delete and purge protection keep the key (and secrets) recoverable for
// `softDeleteRetentionInDays` after any deletion; purge protection cannot be switched off again.
param name string
param location string
param tags object = {}

@description('Name of the digest signing key. The app reads the key\'s versionless URI from AUDIT_KEY_VAULT_KEY_ID.')
param keyName string

@minValue(7)
@maxValue(90)
@description('Days a deleted vault or key stays recoverable (and its name reserved). Fixed once the vault exists.')
param softDeleteRetentionInDays int = 90

@description('Log Analytics workspace that receives the vault\'s audit log (every sign and key read, by whom).')
param logAnalyticsWorkspaceId string

@description('Put a CanNotDelete lock on the vault, so deleting the signing key\'s home takes a deliberate step.')
param deleteLock bool = true

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard' // software-protected EC key; 'premium' + kty 'EC-HSM' if an HSM-backed key is required
    }
    enableRbacAuthorization: true
    accessPolicies: [] // ignored in RBAC mode; declared empty so none can be relied on
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // Same network posture as the storage accounts: the Flex Consumption app has no VNet integration,
    // so it reaches the vault over the public endpoint; every request still needs Entra + RBAC.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// The digest signing key. ARM creates a key only if it does not exist (Keys - Create If Not Exist):
// re-provisioning neither adds a version nor changes the key, so rotation is always deliberate
// (docs/operations.md, "Rotate the signing key"). No expiry and no automatic rotation policy:
// consumers pin the public key, so a new key must be announced, not appear on a timer.
resource signingKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: keyName
  properties: {
    kty: 'EC'
    curveName: 'P-256'
    keyOps: [
      'sign'
      'verify'
    ]
    attributes: {
      enabled: true
    }
  }
}

// Key Vault's own audit log (AuditEvent): who signed, who read the key, who changed the vault.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

resource vaultLock 'Microsoft.Authorization/locks@2020-05-01' = if (deleteLock) {
  name: 'do-not-delete-audit-signing'
  scope: vault
  properties: {
    level: 'CanNotDelete'
    notes: 'Golden image governance: holds the audit digest signing key. Remove deliberately (docs/operations.md).'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
output keyName string = signingKey.name
// Versionless: https://<vault>.vault.azure.net/keys/<keyName> (signs with the current version).
output keyUri string = signingKey.properties.keyUri
output keyUriWithVersion string = signingKey.properties.keyUriWithVersion
