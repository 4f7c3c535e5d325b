package api

import "net/http"

// table is every endpoint. The OpenAPI document (openapi.json) describes
// the same set; TestAPIOpenAPIMatchesRoutes keeps them equal.
func (s *Server) table() []route {
	return []route{
		{Method: http.MethodGet, Path: "/v1/openapi.json", h: s.openAPI},
		{Method: http.MethodGet, Path: "/metrics", Scope: ScopeRead, h: s.metricsHandler},
		{Method: http.MethodGet, Path: "/v1/status", Scope: ScopeRead, h: s.getStatus},
		{Method: http.MethodGet, Path: "/v1/apps", Scope: ScopeRead, h: s.listApps},
		{Method: http.MethodPost, Path: "/v1/apps", Scope: ScopeAdmin, h: s.applyApp},
		{Method: http.MethodGet, Path: "/v1/apps/{app}", Scope: ScopeRead, h: s.getApp},
		{Method: http.MethodDelete, Path: "/v1/apps/{app}", Scope: ScopeAdmin, h: s.deleteApp},
		{Method: http.MethodGet, Path: "/v1/apps/{app}/instances", Scope: ScopeRead, h: s.appInstances},
		{Method: http.MethodPost, Path: "/v1/apps/{app}/scale", Scope: ScopeAdmin, h: s.scaleApp},
		{Method: http.MethodPost, Path: "/v1/apps/{app}/passivate", Scope: ScopeAdmin, h: s.passivateApp},
		{Method: http.MethodPost, Path: "/v1/apps/{app}/wake", Scope: ScopeAdmin, h: s.wakeApp},
		{Method: http.MethodGet, Path: "/v1/apps/{app}/deploys", Scope: ScopeRead, h: s.deployHistory},
		{Method: http.MethodPost, Path: "/v1/apps/{app}/deploys", Scope: ScopeAdmin, h: s.startDeploy},
		{Method: http.MethodPost, Path: "/v1/apps/{app}/deploys/promote", Scope: ScopeAdmin, h: s.promoteDeploy},
		{Method: http.MethodPost, Path: "/v1/apps/{app}/deploys/abort", Scope: ScopeAdmin, h: s.abortDeploy},
		{Method: http.MethodPost, Path: "/v1/apps/{app}/deploys/rollback", Scope: ScopeAdmin, h: s.rollbackDeploy},
		{Method: http.MethodGet, Path: "/v1/instances", Scope: ScopeRead, h: s.listInstances},
		{Method: http.MethodGet, Path: "/v1/nodes", Scope: ScopeRead, h: s.listNodes},
		{Method: http.MethodGet, Path: "/v1/domains", Scope: ScopeRead, h: s.listDomains},
		{Method: http.MethodGet, Path: "/v1/routes", Scope: ScopeRead, h: s.listRoutes},
		{Method: http.MethodGet, Path: "/v1/certificates", Scope: ScopeRead, h: s.listCertificates},
		{Method: http.MethodGet, Path: "/v1/units", Scope: ScopeRead, h: s.listUnits},
		{Method: http.MethodPost, Path: "/v1/units/{unit}/start", Scope: ScopeAdmin, h: s.startUnit},
		{Method: http.MethodPost, Path: "/v1/units/{unit}/stop", Scope: ScopeAdmin, h: s.stopUnit},
		{Method: http.MethodGet, Path: "/v1/audit", Scope: ScopeAdmin, h: s.listAudit},
		{Method: http.MethodGet, Path: "/v1/events", Scope: ScopeRead, Stream: true, h: s.events},
	}
}
