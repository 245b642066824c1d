# azd postdeploy hook (Windows): same steps as postdeploy.sh, which explains why they are needed.
# Waits for the build_events function, deploys infra/app/eventgrid-subscription.bicep with the
# deployment name main.bicep uses, then sets BUILD_EVENTS_SUBSCRIPTION_ENABLED=true.
$ErrorActionPreference = 'Stop'

foreach ($name in 'AZURE_ENV_NAME', 'AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_NAME',
    'IMAGE_FACTORY_RESOURCE_GROUP', 'IMAGE_FACTORY_SYSTEM_TOPIC_NAME', 'BUILD_EVENTS_FUNCTION_ID',
    'GOVERNANCE_STORAGE_ACCOUNT_ID', 'EVENTGRID_DEADLETTER_CONTAINER') {
    if (-not [Environment]::GetEnvironmentVariable($name)) { throw "postdeploy: $name is not set in the azd environment" }
}
if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    throw "postdeploy: the Azure CLI (az) is required; install it, run 'az login', then 'azd hooks run postdeploy'."
}

$functionName = 'build_events'
$deploymentName = "build-events-subscription-$($env:AZURE_ENV_NAME)"
if ($deploymentName.Length -gt 64) { $deploymentName = $deploymentName.Substring(0, 64) }
$attempts = if ($env:BUILD_EVENTS_WAIT_ATTEMPTS) { [int]$env:BUILD_EVENTS_WAIT_ATTEMPTS } else { 30 }

Write-Host "postdeploy: waiting for $($env:AZURE_FUNCTION_NAME)/$functionName to be indexed..."
for ($i = 1; ; $i++) {
    az functionapp function show --subscription $env:AZURE_SUBSCRIPTION_ID --resource-group $env:AZURE_RESOURCE_GROUP `
        --name $env:AZURE_FUNCTION_NAME --function-name $functionName --query id --output tsv *> $null
    if ($LASTEXITCODE -eq 0) { break }
    if ($i -ge $attempts) {
        throw "postdeploy: $functionName is not listed after $($attempts * 10) s; check the deployment, then 'azd hooks run postdeploy'."
    }
    Start-Sleep -Seconds 10
}

Write-Host "postdeploy: deploying Event Grid subscription 'build-events' on $($env:IMAGE_FACTORY_SYSTEM_TOPIC_NAME)..."
az deployment group create --subscription $env:AZURE_SUBSCRIPTION_ID --resource-group $env:IMAGE_FACTORY_RESOURCE_GROUP `
    --name $deploymentName --template-file ./infra/app/eventgrid-subscription.bicep `
    --parameters systemTopicName=$($env:IMAGE_FACTORY_SYSTEM_TOPIC_NAME) `
    functionResourceId=$($env:BUILD_EVENTS_FUNCTION_ID) `
    deadLetterStorageAccountId=$($env:GOVERNANCE_STORAGE_ACCOUNT_ID) `
    deadLetterContainerName=$($env:EVENTGRID_DEADLETTER_CONTAINER) `
    --output none
if ($LASTEXITCODE -ne 0) { throw 'postdeploy: the Event Grid subscription deployment failed' }

azd env set BUILD_EVENTS_SUBSCRIPTION_ENABLED true
Write-Host 'postdeploy: build_events subscription is in place.'
