# syntax=docker/dockerfile:1
# Multi-stage: build a static binary, ship it alone on distroless, non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same command test/run.sh checks produces a static binary.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ec2proxy ./cmd/ec2proxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ec2proxy /usr/bin/ec2proxy
# Numeric, so Kubernetes runAsNonRoot can check it.
USER 65532:65532
# 8773: EC2 API. 8774: /metrics, /healthz, /readyz (set admin_listen: ":8774"
# in the configuration to reach it from outside the container).
EXPOSE 8773 8774
# Liveness from inside the container (no curl in distroless): the admin
# listener of the mounted configuration.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["/usr/bin/ec2proxy", "health", "-config", "/etc/ec2proxy/ec2proxy.yaml"]
ENTRYPOINT ["/usr/bin/ec2proxy"]
CMD ["serve", "-config", "/etc/ec2proxy/ec2proxy.yaml"]
