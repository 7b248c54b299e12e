package main

import "testing"

func TestDemoPorts(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want [2]int
		ok   bool
	}{{"", [2]int{}, true}, {"5000,5001", [2]int{5000, 5001}, true}, {" 6000 , 6001", [2]int{6000, 6001}, true},
		{"5000", [2]int{}, false}, {"5000,5000", [2]int{}, false}, {"x,1", [2]int{}, false}, {"0,70000", [2]int{}, false}} {
		t.Setenv("DEMO_PORTS", tt.env)
		got, err := demoPorts()
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("DEMO_PORTS=%q: %v, %v", tt.env, got, err)
		}
	}
}
