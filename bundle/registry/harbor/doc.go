// Package harbor holds Harbor's rules on top of package registry: its
// project names (CheckRepository), project creation through its API
// (CreateProjects), and what its answers mean (Explain, PullBlocked).
package harbor
