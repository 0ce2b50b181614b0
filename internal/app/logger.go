package app

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ec2proxy/ec2proxy/configs"
)

// NewLogger builds the zap logger: JSON (or console) to stderr, sampled so
// that a flood of bad requests cannot turn into a flood of log lines.
func NewLogger(c configs.Log) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Encoding = c.Format
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.DisableStacktrace = true // operators want the message, not Go frames
	if c.Format == "console" {
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	return zc.Build()
}
