#!/bin/sh
# azd postdeploy hook: create the Event Grid subscription that delivers image factory events to the
# build_events function.
#
# Why here and not in the first provision: the subscription's AzureFunction endpoint names the
# function resource (<app>/functions/build_events), which exists only once the code is deployed and
# the host has indexed it. This hook waits for it, deploys infra/app/eventgrid-subscription.bicep with
# the same deployment name main.bicep uses, and sets BUILD_EVENTS_SUBSCRIPTION_ENABLED=true so every
# later `azd provision` declares the subscription itself. Safe to re-run: the deployment is idempotent.
#
# Inputs come from the azd environment (main.bicep outputs). Needs the Azure CLI, signed in
# (`az login`) to the same tenant as azd.
set -eu

: "${AZURE_ENV_NAME:?}" "${AZURE_SUBSCRIPTION_ID:?}" "${AZURE_RESOURCE_GROUP:?}" "${AZURE_FUNCTION_NAME:?}"
: "${IMAGE_FACTORY_RESOURCE_GROUP:?}" "${IMAGE_FACTORY_SYSTEM_TOPIC_NAME:?}" "${BUILD_EVENTS_FUNCTION_ID:?}"
: "${GOVERNANCE_STORAGE_ACCOUNT_ID:?}" "${EVENTGRID_DEADLETTER_CONTAINER:?}"

function_name="build_events"
deployment_name=$(printf '%.64s' "build-events-subscription-${AZURE_ENV_NAME}")
attempts="${BUILD_EVENTS_WAIT_ATTEMPTS:-30}"   # x 10 s

if ! command -v az >/dev/null 2>&1; then
  echo "postdeploy: the Azure CLI (az) is required to create the Event Grid subscription." >&2
  echo "postdeploy: install it, run 'az login', then 'azd hooks run postdeploy'." >&2
  exit 1
fi

# 1. Wait until the host has indexed build_events (it appears as a child resource of the app).
echo "postdeploy: waiting for ${AZURE_FUNCTION_NAME}/${function_name} to be indexed..."
i=0
until az functionapp function show \
  --subscription "$AZURE_SUBSCRIPTION_ID" \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "$AZURE_FUNCTION_NAME" \
  --function-name "$function_name" \
  --query id --output tsv >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge "$attempts" ]; then
    echo "postdeploy: ${function_name} is not listed after $((attempts * 10)) s." >&2
    echo "postdeploy: check the deployment logs in Application Insights, then 'azd hooks run postdeploy'." >&2
    exit 1
  fi
  sleep 10
done

# 2. Create or update the subscription (same name and parameters as main.bicep's module).
echo "postdeploy: deploying Event Grid subscription 'build-events' on ${IMAGE_FACTORY_SYSTEM_TOPIC_NAME}..."
az deployment group create \
  --subscription "$AZURE_SUBSCRIPTION_ID" \
  --resource-group "$IMAGE_FACTORY_RESOURCE_GROUP" \
  --name "$deployment_name" \
  --template-file "./infra/app/eventgrid-subscription.bicep" \
  --parameters \
    systemTopicName="$IMAGE_FACTORY_SYSTEM_TOPIC_NAME" \
    functionResourceId="$BUILD_EVENTS_FUNCTION_ID" \
    deadLetterStorageAccountId="$GOVERNANCE_STORAGE_ACCOUNT_ID" \
    deadLetterContainerName="$EVENTGRID_DEADLETTER_CONTAINER" \
  --output none

# 3. From now on main.bicep declares it, so `azd provision` keeps it instead of drifting.
azd env set BUILD_EVENTS_SUBSCRIPTION_ENABLED true
echo "postdeploy: build_events subscription is in place."
