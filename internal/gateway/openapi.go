package gateway

import _ "embed"

// OpenAPI is the OpenAPI 3 document of the gateway's API, served at /v1/openapi.yaml.
// docs/openapi.yaml is a copy kept identical by a test.
//
//go:embed openapi.yaml
var OpenAPI []byte
