// The compose model and the runtime rewrite, on texts shaped like what `docker-compose config` (v1) and
// `docker compose config` (v2) print and like compose files as people write them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "environments/compose_engine.hpp"
#include "environments/compose_file.hpp"
#include "util/error.hpp"

using namespace testfleet::environments;
using testfleet::UsageError;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

// `docker-compose config` 1.29 output: long port syntax next to strings, depends_on as a map.
constexpr const char* kV1Config = R"(services:
  app:
    build:
      context: /src/project
    depends_on:
      db:
        condition: service_healthy
      redis:
        condition: service_started
    environment:
      DATABASE_URL: postgresql://postgres@db/postgres
      FLAG: 'yes'
      PORT: '8080'
  db:
    build:
      context: /src/project/db
    container_name: project-db
    healthcheck:
      interval: 1s
      test:
      - CMD
      - pg_isready
    ports:
    - target: 5432
    - 127.0.0.1:15432:5432/tcp
  redis:
    expose:
    - 6379
    - 7000-7001
    image: redis:7
  docs:
    image: nginx
    profiles:
    - docs
version: '3.9'
)";

std::string what_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "(nothing thrown)";
}

}  // namespace

TEST(ComposeModel, ReadsV1ConfigOutput) {
  ComposeModel model = parse_compose_model(kV1Config, "docker-compose.yml");
  EXPECT_EQ(model.version, "3.9");
  EXPECT_THAT(model.service_names(), ElementsAre("app", "db", "redis", "docs"));

  const ComposeService* app = model.find("app");
  ASSERT_NE(app, nullptr);
  EXPECT_TRUE(app->builds);
  EXPECT_EQ(app->image, "");
  EXPECT_THAT(app->depends_on, ElementsAre("db", "redis"));
  EXPECT_TRUE(app->tcp_ports.empty());

  const ComposeService* db = model.find("db");
  EXPECT_TRUE(db->declares_healthcheck);
  EXPECT_FALSE(db->healthcheck_disabled);
  EXPECT_EQ(db->container_name, "project-db");
  EXPECT_THAT(db->tcp_ports, ElementsAre(5432));

  const ComposeService* redis = model.find("redis");
  EXPECT_FALSE(redis->builds);
  EXPECT_EQ(redis->image, "redis:7");
  EXPECT_THAT(redis->tcp_ports, ElementsAre(6379, 7000, 7001));

  EXPECT_THAT(model.find("docs")->profiles, ElementsAre("docs"));
  EXPECT_EQ(model.find("nope"), nullptr);
}

TEST(ComposeModel, ReadsShortSyntaxAsPeopleWriteIt) {
  ComposeModel model = parse_compose_model(R"(
version: "2.4"
services:
  web:
    image: web
    depends_on: [db, cache]
    ports:
      - "8000:8000"
      - 9000
      - "[::1]:6000:6001"
      - "53:53/udp"
      - "30000-30100:30000-30100"
  db:
    image: postgres
    healthcheck:
      test: ["NONE"]
  cache:
    image: redis
    healthcheck:
      disable: true
    network_mode: host
)",
                                           "compose.yml");
  EXPECT_EQ(model.version, "2.4");
  const ComposeService* web = model.find("web");
  // UDP cannot be waited for with a TCP connect; a 101-port block is not worth waiting on port by port.
  EXPECT_THAT(web->tcp_ports, ElementsAre(6001, 8000, 9000));
  EXPECT_THAT(web->depends_on, ElementsAre("db", "cache"));
  EXPECT_TRUE(model.find("db")->healthcheck_disabled);
  EXPECT_TRUE(model.find("cache")->healthcheck_disabled);
  EXPECT_EQ(model.find("cache")->network_mode, "host");
}

TEST(ComposeModel, ReadsV2ConfigOutput) {
  // `docker compose config` (v2): a top-level name, string ports with mode and protocol.
  ComposeModel model = parse_compose_model(R"(name: project
services:
  app:
    depends_on:
      db:
        condition: service_started
        required: true
    image: app
    networks:
      default: null
  db:
    expose:
      - "5432"
    image: postgres
    ports:
      - mode: ingress
        target: 5432
        published: "15432"
        protocol: tcp
      - mode: ingress
        target: 5353
        protocol: udp
networks:
  default:
    name: project_default
)",
                                           "compose.yaml");
  EXPECT_THAT(model.find("app")->depends_on, ElementsAre("db"));
  EXPECT_THAT(model.find("db")->tcp_ports, ElementsAre(5432));
}

TEST(ComposeModel, ErrorsNameTheFileAndLine) {
  EXPECT_THAT(what_of([] { parse_compose_model("services: [a, b", "bad.yml"); }), HasSubstr("bad.yml:"));
  EXPECT_THAT(what_of([] { parse_compose_model("version: '3'\n", "empty.yml"); }),
              HasSubstr("empty.yml: not a compose file (no `services` map)"));
  EXPECT_THAT(what_of([] { parse_compose_model("services:\n  db:\n    ports: ['99999']\n", "ports.yml"); }),
              HasSubstr("ports.yml:3 ports: '99999' is not a port"));
  EXPECT_THROW(parse_compose_model("services:\n  db: [1]\n", "x.yml"), UsageError);
}

TEST(ComposeModel, StripsWarningsPrintedWithTheDocument) {
  std::string output =
      "WARNING: The FOO variable is not set. Defaulting to a blank string.\n"
      "services:\n  a:\n    image: x\n"
      "WARN[0000] /p/compose.yml: `version` is obsolete\n"
      "time=\"2024-01-01T00:00:00Z\" level=warning msg=\"x\"\n"
      "version: '3.9'\n";
  EXPECT_EQ(strip_compose_warnings(output), "services:\n  a:\n    image: x\nversion: '3.9'\n");
  EXPECT_THAT(parse_compose_model(strip_compose_warnings(output), "f").service_names(), ElementsAre("a"));
}

TEST(Sidecars, FollowDependsOnTransitively) {
  ComposeModel model = parse_compose_model(R"(services:
  app: {image: a, depends_on: [api]}
  api: {image: b, depends_on: {db: {condition: service_healthy}, cache: {}}}
  db: {image: c}
  cache: {image: d, depends_on: [db]}
  unrelated: {image: e}
)",
                                           "f.yml");
  EXPECT_THAT(select_sidecars(model, "app", {}), ElementsAre("db", "cache", "api"));
  EXPECT_THAT(with_dependencies(model, {"app"}), ElementsAre("db", "cache", "api", "app"));
  EXPECT_THAT(select_sidecars(model, "app", {"cache"}), ElementsAre("db", "cache"));
}

TEST(Sidecars, WithoutDependsOnEveryOtherServiceExceptProfilesAndDependents) {
  ComposeModel model = parse_compose_model(kV1Config, "docker-compose.yml");
  // db has no depends_on: redis, and app depends on db so it is no sidecar; docs has a profile.
  EXPECT_THAT(select_sidecars(model, "db", {}), ElementsAre("redis"));
  EXPECT_THAT(select_sidecars(model, "app", {}), ElementsAre("db", "redis"));
}

TEST(Sidecars, UnknownServicesAreNamedWithTheServicesThereAre) {
  ComposeModel model = parse_compose_model(kV1Config, "docker-compose.yml");
  EXPECT_EQ(
      what_of([&] { select_sidecars(model, "tests", {}); }),
      "docker-compose.yml has no service 'tests' (the test service); its services: app, db, redis, docs");
  EXPECT_THAT(what_of([&] { select_sidecars(model, "app", {"postgres"}); }),
              HasSubstr("has no service 'postgres' (a sidecar)"));
  ComposeModel dangling = parse_compose_model("services:\n  a: {image: x, depends_on: [ghost]}\n", "d.yml");
  EXPECT_THAT(what_of([&] { select_sidecars(dangling, "a", {}); }),
              HasSubstr("d.yml has no service 'ghost' (depends_on of a)"));
}

TEST(WaitTargets, ParseServiceAndPort) {
  EXPECT_EQ(parse_wait_target("db:5432"), (WaitTarget{"db", 5432}));
  EXPECT_THAT(what_of([] { parse_wait_target("db"); }), HasSubstr("expected SERVICE:PORT"));
  EXPECT_THAT(what_of([] { parse_wait_target("db:0"); }), HasSubstr("'0' is not a port"));
  EXPECT_THAT(what_of([] { parse_wait_target("db:http"); }), HasSubstr("'http' is not a port"));
  EXPECT_THROW(parse_wait_target(":5432"), UsageError);
}

TEST(ProjectNames, AreValidComposeProjectNames) {
  EXPECT_EQ(compose_project_name("20261126-0722-AB12", "g3"), "testfleet-20261126-0722-ab12-g3");
  EXPECT_EQ(compose_project_name("run id/with:odd.chars", "collect"),
            "testfleet-run-id-with-odd-chars-collect");
  EXPECT_EQ(compose_project_name("--", "g1"), "testfleet-x-g1");
  EXPECT_EQ(compose_project_prefix(std::nullopt), "testfleet-");
  EXPECT_EQ(compose_project_prefix(std::string("Run.1")), "testfleet-run-1-");
  // Every project of a run starts with that run's prefix, and no project of another run does.
  EXPECT_TRUE(compose_project_name("r1", "g2").starts_with(compose_project_prefix(std::string("r1"))));
  EXPECT_FALSE(compose_project_name("r10", "g2").starts_with(compose_project_prefix(std::string("r1"))));
}

TEST(RuntimeImageName, StablePerFileAndDistinctPerFolder) {
  std::string a = runtime_image_name("/src/Shop API/docker-compose.yml", "App");
  EXPECT_THAT(a, ::testing::MatchesRegex("testfleet-shop-api-[0-9a-f]{8}-app"));
  EXPECT_EQ(a, runtime_image_name("/src/Shop API/./docker-compose.yml", "App"));
  EXPECT_NE(a, runtime_image_name("/other/Shop API/docker-compose.yml", "App"));
}

TEST(RuntimeCompose, DropsHostPortsAndNamesAndSetsImages) {
  std::string text = render_runtime_compose(kV1Config, {{"app", "testfleet-project-0123abcd-app"}}, "f.yml");
  YAML::Node root = YAML::Load(text);
  EXPECT_EQ(root["services"]["app"]["image"].as<std::string>(), "testfleet-project-0123abcd-app");
  EXPECT_FALSE(root["services"]["db"]["ports"]);
  EXPECT_FALSE(root["services"]["db"]["container_name"]);
  EXPECT_FALSE(root["services"]["db"]["image"]);
  EXPECT_EQ(root["services"]["redis"]["image"].as<std::string>(), "redis:7");
  // What remains is unchanged, quoted strings included: 'yes' must not become a boolean for compose.
  EXPECT_THAT(text, HasSubstr("FLAG: \"yes\""));
  EXPECT_THAT(text, HasSubstr("PORT: \"8080\""));
  EXPECT_THAT(text, HasSubstr("version: \"3.9\""));
  EXPECT_EQ(root["services"]["db"]["healthcheck"]["test"][1].as<std::string>(), "pg_isready");
  EXPECT_THAT(root["services"]["redis"]["expose"][1].as<std::string>(), "7000-7001");

  // The model of the rewritten text is the model of the original, less the host-facing parts.
  ComposeModel before = parse_compose_model(kV1Config, "f.yml");
  ComposeModel after = parse_compose_model(text, "runtime.yml");
  EXPECT_EQ(after.service_names(), before.service_names());
  EXPECT_THAT(after.find("redis")->tcp_ports, ElementsAre(6379, 7000, 7001));
  EXPECT_TRUE(after.find("db")->tcp_ports.empty());
  // Rendering is stable: a second pass changes nothing.
  EXPECT_EQ(render_runtime_compose(text, {}, "runtime.yml"), text);
}

TEST(RuntimeCompose, ForgetsTheProjectNameThatV2BakesIn) {
  // `docker compose config` (v2) output for a project in folder "shop".
  std::string text = render_runtime_compose(R"(name: shop
services:
  app:
    image: app
    networks:
      default: null
      backend: null
    volumes:
      - type: volume
        source: data
        target: /data
networks:
  backend:
    name: shop_backend
  default:
    name: shop_default
  corporate:
    name: shop_corporate
    external: true
  custom:
    name: fixed-name
volumes:
  data:
    name: shop_data
)",
                                            {}, "compose.yaml");
  YAML::Node root = YAML::Load(text);
  EXPECT_FALSE(root["name"]);
  EXPECT_FALSE(root["networks"]["default"]["name"]);
  EXPECT_FALSE(root["networks"]["backend"]["name"]);
  EXPECT_FALSE(root["volumes"]["data"]["name"]);
  // Names the user chose stay: an external network, a fixed name.
  EXPECT_EQ(root["networks"]["corporate"]["name"].as<std::string>(), "shop_corporate");
  EXPECT_EQ(root["networks"]["custom"]["name"].as<std::string>(), "fixed-name");
  EXPECT_EQ(root["services"]["app"]["volumes"][0]["source"].as<std::string>(), "data");
}

TEST(ContainerState, ParsesTheInspectFormat) {
  ContainerState state = parse_container_state(
      "/testfleet-r1-g1_db_1\trunning\t0\thealthy\ttestfleet-r1-g1_default\t"
      "testfleet-r1-g1_default=172.30.1.2 other=10.0.0.5 \t5432/tcp 53/udp \n");
  EXPECT_EQ(state.name, "testfleet-r1-g1_db_1");
  EXPECT_EQ(state.status, "running");
  EXPECT_EQ(state.health, "healthy");
  ASSERT_EQ(state.networks.size(), 2u);
  EXPECT_EQ(state.networks[0],
            (std::pair<std::string, std::string>{"testfleet-r1-g1_default", "172.30.1.2"}));
  EXPECT_THAT(state.exposed_tcp_ports, ElementsAre(5432));

  ContainerState exited = parse_container_state("/x\texited\t137\t\tnone\t\t\n");
  EXPECT_EQ(exited.exit_code, 137);
  EXPECT_EQ(exited.health, "");
  EXPECT_TRUE(exited.networks.empty());
  EXPECT_THROW(parse_container_state("garbage"), testfleet::InfrastructureError);
}
