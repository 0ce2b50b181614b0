package proxy

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/policy"
)

// PolicySource gives the rules in force (a *policy.File reloads them).
type PolicySource interface {
	Policy() *policy.Policy
}

// decisionCounters are the policy_decisions_total series of one policy:
// one pair per action it names, and "other" for the rest (a bounded label
// set whatever clients send).
type decisionCounters struct {
	policy   *policy.Policy
	byAction map[string]*[2]prometheus.Counter // [deny, allow]
	other    [2]prometheus.Counter
}

func newDecisionCounters(p *policy.Policy, vec *prometheus.CounterVec) *decisionCounters {
	d := &decisionCounters{policy: p, byAction: map[string]*[2]prometheus.Counter{}}
	pair := func(action string) [2]prometheus.Counter {
		return [2]prometheus.Counter{vec.WithLabelValues(action, "deny"), vec.WithLabelValues(action, "allow")}
	}
	for _, a := range p.Actions() {
		c := pair(a)
		d.byAction[a] = &c
	}
	d.other = pair("other")
	return d
}

// authorizer applies the policy to verified requests.
type authorizer struct {
	source   PolicySource
	vec      *prometheus.CounterVec
	counters atomic.Pointer[decisionCounters]
}

// count counts a decision under the action whose rule decided (a
// respelled "registerImage" counts as RegisterImage), "other" if none of
// its own did.
func (a *authorizer) count(p *policy.Policy, rule string, allowed bool) {
	d := a.counters.Load()
	if d == nil || d.policy != p { // first use, or the file was reloaded
		d = newDecisionCounters(p, a.vec)
		a.counters.Store(d)
	}
	i := 0
	if allowed {
		i = 1
	}
	if c := d.byAction[strings.TrimPrefix(rule, policy.ActionPrefix)]; c != nil && rule != policy.DefaultRule {
		c[i].Inc()
		return
	}
	d.other[i].Inc()
}

// authorize decides the request's action for id; false means it has been
// answered with UnauthorizedOperation.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, st *state, id *keystoneclient.Identity) (outcome, bool) {
	if s.authz == nil {
		return 0, true
	}
	st.creds = policy.Creds{
		UserID: id.UserID, UserDomainID: id.UserDomainID,
		ProjectID: id.ProjectID, ProjectDomainID: id.ProjectDomainID,
		Roles:   id.Roles,
		TrustID: id.TrustID, TrustorID: id.TrustorID, TrusteeID: id.TrusteeID,
		AppCredID: id.AppCredID,
	}
	// EC2 requests act on the caller's own project (as in nova's EC2 API).
	st.target = policy.Target{ProjectID: id.ProjectID, UserID: id.UserID}
	p := s.authz.source.Policy()
	action := st.action()
	allowed, rule := p.Authorize(action, &st.creds, &st.target)
	s.authz.count(p, rule, allowed)
	if allowed {
		return 0, true
	}
	decidedBy := "no rule allows it"
	if rule != "" {
		decidedBy = "refused by policy rule " + rule
	}
	return s.fail(ctx, st, errUnauthorizedOperation, "You are not authorized to perform this operation: "+string(action)+
		" is "+decidedBy+" for the roles ["+id.RolesHeader+"].", nil), false
}
