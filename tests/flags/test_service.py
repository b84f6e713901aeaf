"""The flags service on SQLite and PostgreSQL: versions, approvals, deployments that
step on time and roll back on alarms, the kill switch, segments, layers, staleness."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mechanisms.flags import deployments, service
from mechanisms.flags.tables import FlagVersion
from mechanisms.ops import alarms as ops_alarms
from tests.flags.conftest import engine, evaluate, watched_alarm

ON_FOR_ALL = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "fallthrough": {"variant": "on"},
}


def test_a_new_flag_exists_in_every_environment_serving_off(db, checkout):
    for env in ("beta", "gamma", "prod"):
        result = evaluate(db, "shop", env, "checkout-v2", {"targetingKey": "u1"})
        assert (result.value, result.reason, result.metadata["version"]) == (False, "DEFAULT", 1)


def test_a_change_in_beta_is_a_new_version_served_at_once(db, checkout, run):
    change = run(service.set_config, "shop", "checkout-v2", "beta", ON_FOR_ALL, comment="open up")
    assert change.version.number == 2 and change.deployment.state == "baking"
    assert evaluate(db, "shop", "beta", "checkout-v2", {"targetingKey": "u1"}).value is True
    assert evaluate(db, "shop", "gamma", "checkout-v2", {"targetingKey": "u1"}).value is False


def test_production_changes_need_another_person(db, checkout, run, as_user):
    eve, leo = as_user("eve"), as_user("leo")
    change = run(service.set_config, "shop", "checkout-v2", "prod", ON_FOR_ALL, as_=eve)
    request = change.change_request
    assert change.version is None and request.state == "open"
    assert evaluate(db, "shop", "prod", "checkout-v2", {"targetingKey": "u"}).value is False
    with pytest.raises(Forbidden, match="another person"):
        run(service.approve_change, request.id, as_=eve)
    applied = run(service.approve_change, request.id, "looks right", as_=leo)
    assert applied.version.number == 2 and applied.version.author == "eve"
    assert evaluate(db, "shop", "prod", "checkout-v2", {"targetingKey": "u"}).value is True


def test_any_further_edit_invalidates_an_open_change_request(db, checkout, run, as_user):
    eve, leo = as_user("eve"), as_user("leo")
    first = run(
        service.set_config, "shop", "checkout-v2", "prod", ON_FOR_ALL, as_=eve
    ).change_request
    second = run(
        service.set_config, "shop", "checkout-v2", "prod", {**ON_FOR_ALL, "enabled": False}, as_=eve
    ).change_request
    run(service.approve_change, second.id, as_=leo)
    with pytest.raises(Conflict, match="invalidated"):
        run(service.approve_change, first.id, as_=leo)


def test_a_linear_rollout_steps_on_time_then_bakes_then_completes(db, checkout, run, clock, worker):
    change = run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        ON_FOR_ALL,
        strategy="Linear50PercentEvery30Seconds",
    )
    keys = [f"user-{i}" for i in range(2000)]

    def share_on() -> float:
        now = engine(db, "shop", "beta")
        return sum(now.evaluate("checkout-v2", {"targetingKey": k}).value for k in keys) / len(keys)

    assert 0.45 < share_on() < 0.55
    worker.run_until_idle()
    assert 0.45 < share_on() < 0.55  # not due yet
    clock.advance(seconds=30)
    worker.run_until_idle()
    assert share_on() == 1.0
    deployment = run(deployments.deployments, "shop", "checkout-v2", "beta")[0]
    assert (deployment.state, deployment.percent) == ("baking", 100.0)
    clock.advance(seconds=60)
    worker.run_until_idle()
    deployment = run(deployments.deployments, "shop", "checkout-v2", "beta")[0]
    assert deployment.state == "complete"
    steps = run(deployments.deployment_steps, change.deployment.id)
    assert [(s.percent, s.state) for s in steps] == [
        (50.0, "rolling"),
        (100.0, "baking"),
        (100.0, "complete"),
    ]


def test_an_alarm_rolls_the_deployment_back_within_one_tick(db, checkout, run, clock, worker):
    run(watched_alarm, "checkout-latency")
    run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        ON_FOR_ALL,
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["checkout-latency"]},
    )
    run(ops_alarms.set_state, "checkout-latency", "ALARM", "p99 above 800 ms")
    worker.tick()
    deployment = run(deployments.deployments, "shop", "checkout-v2", "beta")[0]
    assert deployment.state == "rolled_back"
    assert "checkout-latency" in deployment.reason and deployment.reason.startswith("automatic")
    after = engine(db, "shop", "beta")
    assert all(
        after.evaluate("checkout-v2", {"targetingKey": f"u{i}"}).value is False for i in range(200)
    )


def test_rolling_back_by_hand_needs_a_reason(db, checkout, run):
    change = run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        ON_FOR_ALL,
        strategy="Linear20PercentEvery6Minutes",
    )
    with pytest.raises(InvalidInput, match="say why"):
        run(deployments.rollback, change.deployment.id, " ")
    rolled = run(deployments.rollback, change.deployment.id, "support tickets")
    assert rolled.state == "rolled_back"
    with pytest.raises(Conflict, match="only a running deployment"):
        run(deployments.rollback, change.deployment.id, "again")


def test_one_deployment_at_a_time(db, checkout, run):
    run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        ON_FOR_ALL,
        strategy="Linear20PercentEvery6Minutes",
    )
    with pytest.raises(Conflict, match="still running"):
        run(service.set_config, "shop", "checkout-v2", "beta", {**ON_FOR_ALL, "enabled": False})


def test_the_kill_switch_turns_the_flag_off_everywhere(db, checkout, run, as_user):
    run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        ON_FOR_ALL,
        strategy="Linear20PercentEvery6Minutes",
    )
    run(service.set_config, "shop", "checkout-v2", "gamma", ON_FOR_ALL)
    run(deployments.kill, "shop", "checkout-v2", "payments failing", as_=as_user("eve"))
    for env in ("beta", "gamma", "prod"):
        result = evaluate(db, "shop", env, "checkout-v2", {"targetingKey": "u1"})
        assert (result.value, result.reason) == (False, "DISABLED")


def test_bad_configurations_are_refused_naming_the_field_and_change_nothing(db, checkout, run):
    def versions() -> int:
        with db.transaction(write=False) as session:
            return session.execute(select(func.count()).select_from(FlagVersion)).scalar_one()

    before = versions()
    cases = [
        (
            {
                **ON_FOR_ALL,
                "fallthrough": {
                    "split": [{"variant": "on", "percent": 70}, {"variant": "off", "percent": 20}]
                },
            },
            "config.fallthrough",
        ),
        ({**ON_FOR_ALL, "off_variant": "maybe"}, "config"),
        ({**ON_FOR_ALL, "variants": {"on": "yes", "off": False}}, "config.variants.on"),
        (
            {
                **ON_FOR_ALL,
                "rules": [
                    {
                        "id": "r",
                        "clauses": [{"attribute": "a", "op": "gt", "values": ["x"]}],
                        "serve": {"variant": "on"},
                    }
                ],
            },
            "config.rules.0.clauses.0",
        ),
        (
            {**ON_FOR_ALL, "prerequisites": [{"flag": "checkout-v2", "variants": ["on"]}]},
            "config.prerequisites",
        ),
        (
            {**ON_FOR_ALL, "prerequisites": [{"flag": "ghost", "variants": ["on"]}]},
            "config.prerequisites.0.flag",
        ),
        ("not an object", "config"),
    ]
    for raw, field in cases:
        with pytest.raises(InvalidInput) as refused:
            run(service.set_config, "shop", "checkout-v2", "beta", raw)
        assert refused.value.details["field"].startswith(field), (raw, refused.value.details)
    assert versions() == before


def test_cyclic_prerequisites_are_refused(db, checkout, run):
    run(service.create_flag, "shop", "new-ui")
    run(
        service.set_config,
        "shop",
        "new-ui",
        "beta",
        {**ON_FOR_ALL, "prerequisites": [{"flag": "checkout-v2", "variants": ["on"]}]},
    )
    with pytest.raises(InvalidInput, match="cycle: checkout-v2 → new-ui → checkout-v2"):
        run(
            service.set_config,
            "shop",
            "checkout-v2",
            "beta",
            {**ON_FOR_ALL, "prerequisites": [{"flag": "new-ui", "variants": ["on"]}]},
        )


def test_object_flags_are_checked_against_their_schema(db, checkout, run):
    schema = {
        "type": "object",
        "properties": {"limit": {"type": "integer", "minimum": 1}},
        "required": ["limit"],
    }
    run(
        service.create_flag,
        "shop",
        "limits",
        flag_type="object",
        variants={"low": {"limit": 5}, "high": {"limit": 50}},
        json_schema=schema,
    )
    with pytest.raises(InvalidInput) as refused:
        run(
            service.set_config,
            "shop",
            "limits",
            "beta",
            {
                "variants": {"low": {"limit": 0}, "high": {"limit": 50}},
                "off_variant": "low",
                "fallthrough": {"variant": "high"},
            },
        )
    assert refused.value.details["field"] == "config.variants.low/limit"
    with pytest.raises(InvalidInput, match="needs its variants"):
        run(service.create_flag, "shop", "limits2", flag_type="object")
    with pytest.raises(InvalidInput, match="not a valid JSON Schema"):
        run(
            service.create_flag,
            "shop",
            "limits3",
            flag_type="object",
            variants={"a": {}},
            json_schema={"type": 5},
        )


def test_optimistic_edits_refuse_a_stale_base(db, checkout, run):
    run(service.set_config, "shop", "checkout-v2", "gamma", ON_FOR_ALL)
    with pytest.raises(Conflict, match="replaced version 1"):
        run(service.set_config, "shop", "checkout-v2", "gamma", ON_FOR_ALL, base_number=1)


def test_restore_brings_back_an_old_configuration(db, checkout, run, clock, worker):
    run(service.set_config, "shop", "checkout-v2", "beta", ON_FOR_ALL)
    clock.advance(minutes=11)
    worker.run_until_idle()
    restored = run(service.restore, "shop", "checkout-v2", "beta", 1)
    assert restored.version.number == 3
    assert evaluate(db, "shop", "beta", "checkout-v2", {"targetingKey": "u"}).value is False


def test_segments_are_reusable_and_guarded(db, checkout, run):
    run(
        service.set_segment,
        "shop",
        "beta-testers",
        {
            "included": ["kim"],
            "rules": [[{"attribute": "email", "op": "ends_with", "values": ["@acme.org"]}]],
        },
    )
    rules = [
        {
            "id": "beta",
            "clauses": [{"attribute": "s", "op": "segment_match", "values": ["beta-testers"]}],
            "serve": {"variant": "on"},
        }
    ]
    run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        {**ON_FOR_ALL, "fallthrough": {"variant": "off"}, "rules": rules},
    )
    assert evaluate(db, "shop", "beta", "checkout-v2", {"targetingKey": "kim"}).value is True
    assert (
        evaluate(
            db, "shop", "beta", "checkout-v2", {"targetingKey": "x", "email": "x@acme.org"}
        ).value
        is True
    )
    assert evaluate(db, "shop", "beta", "checkout-v2", {"targetingKey": "y"}).value is False
    with pytest.raises(Conflict, match="uses segment beta-testers"):
        run(service.delete_segment, "shop", "beta-testers")
    with pytest.raises(InvalidInput, match="unknown segment 'ghosts'"):
        run(
            service.set_config,
            "shop",
            "checkout-v2",
            "gamma",
            {
                **ON_FOR_ALL,
                "rules": [
                    {
                        "id": "g",
                        "clauses": [
                            {"attribute": "s", "op": "segment_match", "values": ["ghosts"]}
                        ],
                        "serve": {"variant": "on"},
                    }
                ],
            },
        )


def test_layers_give_disjoint_slices_until_full(db, checkout, run):
    run(service.create_layer, "shop", "pricing")
    for key in ("price-a", "price-b", "price-c"):
        run(service.create_flag, "shop", key, kind="experiment")
    a = run(service.place_in_layer, "shop", "price-a", "pricing", 40)
    b = run(service.place_in_layer, "shop", "price-b", "pricing", 60)
    assert (a.layer_start, a.layer_end, b.layer_start, b.layer_end) == (0, 40_000, 40_000, 100_000)
    with pytest.raises(Conflict, match="only 0 % free"):
        run(service.place_in_layer, "shop", "price-c", "pricing", 1)
    with pytest.raises(InvalidInput, match="only experiment flags"):
        run(service.place_in_layer, "shop", "checkout-v2", "pricing", 1)


def test_a_flag_serving_one_value_too_long_is_stale(db, checkout, run, clock):
    run(service.create_flag, "shop", "dark-mode", stale_after_days=7)
    clock.advance(days=8)
    stale = {(s.flag.key, s.environment) for s in run(service.statuses, "shop") if s.stale}
    assert ("dark-mode", "prod") in stale and ("checkout-v2", "prod") not in stale  # 30 days for it
    split = {
        **ON_FOR_ALL,
        "fallthrough": {
            "split": [{"variant": "on", "percent": 50}, {"variant": "off", "percent": 50}]
        },
    }
    run(service.set_config, "shop", "dark-mode", "gamma", split)
    statuses = {(s.flag.key, s.environment): s for s in run(service.statuses, "shop")}
    assert not statuses[("dark-mode", "gamma")].stale


def test_viewers_and_other_teams_cannot_change_flags(db, checkout, run, as_user):
    with pytest.raises(Forbidden):
        run(service.set_config, "shop", "checkout-v2", "beta", ON_FOR_ALL, as_=as_user("vic"))
    with pytest.raises(Forbidden):
        run(deployments.kill, "shop", "checkout-v2", "because", as_=as_user("vic"))
    with pytest.raises(NotFound):
        run(service.set_config, "shop", "nope", "beta", ON_FOR_ALL)


def test_an_approved_change_keeps_the_monitors_it_was_proposed_with(db, checkout, run, as_user):
    run(watched_alarm, "checkout-latency")
    proposed = run(
        service.set_config,
        "shop",
        "checkout-v2",
        "prod",
        ON_FOR_ALL,
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["checkout-latency"]},
        as_=as_user("eve"),
    ).change_request
    applied = run(service.approve_change, proposed.id, as_=as_user("leo"))
    assert applied.deployment.monitors["alarms"] == ["checkout-latency"]
