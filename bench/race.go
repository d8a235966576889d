//go:build race

package main

// raceEnabled: this binary has the race detector, so the mount is built with it as well.
const raceEnabled = true
