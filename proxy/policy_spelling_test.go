package proxy

import (
	"testing"
)

// nova's and ec2-api's APIRequest dispatch with camelcase_to_underscore(Action):
// "registerImage", "REGISTERImage", "register_image", "_RegisterImage" all call
// register_image (found by a review: the policy looked the Action up
// verbatim, and these fell to "default", past a stricter ec2:RegisterImage).
func TestPolicyActionSpellingsAreTheirRule(t *testing.T) {
	rules := []byte(`
context_is_admin: "role:admin"
default: "role:member"
ec2:RegisterImage: "is_admin:True"
`)
	h := newHarness(t, withPolicy(t, rules))
	rec := h.store.records[testAccess]
	rec.Roles = []string{"member"}
	h.store.records[testAccess] = rec
	post := func(action string) int {
		resp := h.post(signed("POST", h.host(), "/", testSecret, map[string]string{"Action": action}).Encode(), nil)
		return resp.StatusCode
	}
	if got := post("RegisterImage"); got != 403 {
		t.Fatalf("RegisterImage by a member: %d, want 403", got)
	}
	for _, variant := range []string{"registerImage", "REGISTERImage", "register_image", "_RegisterImage", "RegisterIMAGE"} {
		if got := post(variant); got != 403 {
			t.Errorf("Action=%s (the backend calls register_image) by a member: %d, want 403", variant, got)
		}
	}
	if n := len(h.backend.Requests()); n != 0 {
		t.Errorf("the backend received %d requests", n)
	}
}
