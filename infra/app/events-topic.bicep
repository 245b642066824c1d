// Event Grid custom topic for the app's outbound governance events (docs/outbound-events.md):
// approval requested, approved, rejected, expired, reminders, validation escalations.
//
// CloudEvents 1.0 in (the app publishes CloudEvents; subscribers receive them unchanged) and Entra
// auth only: access keys and SAS tokens are refused (disableLocalAuth), so nothing but an identity
// holding "EventGrid Data Sender" on this topic can publish (the app's grant is in rbac.bicep).
// Subscriptions (ServiceNow, Teams, a SIEM...) are created by their owners with their own rights.
param name string
param location string
param tags object = {}

@description('Log Analytics workspace that receives the topic\'s publish failures and data-plane requests.')
param logAnalyticsWorkspaceId string

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    minimumTlsVersionAllowed: '1.2'
    // Same network posture as the storage accounts and the vault: the Flex Consumption app has no
    // VNet integration, so it publishes over the public endpoint; every request still needs Entra + RBAC.
    publicNetworkAccess: 'Enabled'
  }
}

// Publishes (per minute, by authentication type), publish failures (e.g. 403 after a role was removed)
// and deliveries that failed towards subscribers. Categories named one by one: the topic's documented set.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: topic
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'DataPlaneRequests'
        enabled: true
      }
      {
        category: 'PublishFailures'
        enabled: true
      }
      {
        category: 'DeliveryFailures'
        enabled: true
      }
    ]
  }
}

output name string = topic.name
output id string = topic.id
// https://<name>.<region>-1.eventgrid.azure.net/api/events: the app's EVENTS_TOPIC_ENDPOINT.
output endpoint string = topic.properties.endpoint
