"""Every setting in config/store-example.yaml is shown taking effect by a named test (issue 12).

The example is walked alongside the config schema: mapping keys that are setting names extend the path
(``mqtt.keepalive_s``), device lists are keyed by each entry's ``type`` (``cameras[video-file].loop``),
lists of settings models become ``[]`` (``pipelines.speech.intents[].cooldown_s``) and mappings keyed by a
name the store chooses become ``*`` (``pipelines.people.scenes.*.zones[].queue``). A setting whose value is
itself a plain list or mapping of values (``pipelines.speech.intents[].slots``), or an empty section
(``mqtt.tls: null``), is one leaf.

``SETTING_TESTS`` names, for each leaf, the tests that show what the setting does: changing it changes
behaviour, or its value is observed being used (a device opened with that rate delivers it, a broker sees that
keep-alive). A test that only shows the config parses does not count. A leaf missing from the table fails;
so does an entry for a setting the example no longer shows, or one naming a test that does not exist.

Settings only in comments of the example (``mqtt.tls``'s files, a whisper recogniser's ``threads`` and
``fit_window``) are not leaves: ``mqtt.tls`` stands for its section.
"""

from __future__ import annotations

import ast
import types
import typing
from functools import cache
from typing import Any

import yaml
from pydantic import BaseModel

from agent.config.schema import StoreConfig
from drivers.registry import DeviceKind, options_model
from tests.conftest import REPO

EXAMPLE = REPO / "config" / "store-example.yaml"
DEVICE_SECTIONS: dict[str, DeviceKind] = {"cameras": "camera", "microphones": "microphone", "serial": "serial"}

# Tests used for many settings.
EXAMPLE_RUN = (
    "tests/agent/test_runtime.py::test_the_example_opens_only_its_enabled_devices_and_runs_only_its_enabled_pipelines"
)
DRIVER_TYPES = "tests/drivers/test_live_devices.py::test_each_type_in_the_example_picks_its_driver"
SOURCES = "tests/agent/test_runtime.py::test_pipelines_take_only_the_sources_they_list"
QUIET_CAMERA = "tests/agent/test_runtime.py::test_stale_after_and_read_timeout_on_a_camera_gone_quiet"
MQTT_CONNECT = "tests/delivery/test_connection_settings.py::test_connect_carries_client_id_protocol_keepalive_and_user"
MQTT_PASSWORD = "tests/delivery/test_connection_settings.py::test_password_comes_from_the_environment_or_a_credential"
MQTT_TOPICS = "tests/delivery/test_connection_settings.py::test_topics_status_and_health_follow_the_settings"
MQTT_ACK = "tests/delivery/test_connection_settings.py::test_ack_broker_or_hub_and_the_hub_resend_timeout"
AGENT_MQTT = "tests/delivery/test_agent_mqtt.py::test_events_status_health_and_last_will"
TEST_PATTERN = "tests/drivers/test_replay_sources.py::test_test_pattern_settings_shape_the_frames"
IMAGE_FOLDER = "tests/drivers/test_replay_sources.py::test_image_folder_fps_realtime_and_loop"
WAV_MIC = "tests/drivers/test_replay_sources.py::test_wav_microphone_rate_realtime_and_loop"
PORTAUDIO = "tests/drivers/test_live_devices.py::test_microphone_settings_through_portaudio"
RTSP_AUTH = "tests/drivers/test_rtsp.py::test_credentials_and_transport_reach_the_camera"
V4L2 = "tests/drivers/test_live_devices.py::test_v4l2_settings_are_what_the_device_delivers"
PICAMERA2 = "tests/drivers/test_live_devices.py::test_picamera2_settings_reach_libcamera"
TTY = "tests/drivers/test_serial_pty.py::test_line_settings_reach_the_tty"
UART = "tests/drivers/test_serial_pty.py::test_bytesize_and_parity_on_a_real_uart"
PN532_POLLS = "tests/drivers/test_serial_pty.py::test_pn532_poll_interval_and_passive_retries_reach_the_chip"
PN532_MISSED = "tests/drivers/test_serial_pty.py::test_pn532_response_timeout_and_max_missed_responses"
ASCII_READER = "tests/drivers/test_serial_script.py::test_ascii_reader_settings_decode_the_lines"
BARCODE = "tests/drivers/test_serial_script.py::test_barcode_settings_filter_the_lines"
MOTION = "tests/motion/test_motion_stage.py::"
FACE = "tests/face/test_face_settings.py::"
FACE_DETECTION = FACE + "test_detection_settings_decide_which_faces_are_found"
FACE_GATES = FACE + "test_quality_gates"
FACE_DECISION = FACE + "test_liveness_match_threshold_and_margin_decide_what_a_face_is"
FACE_KEYS = FACE + "test_the_gallery_key_comes_from_where_the_settings_say"
FACE_PRIVACY = "tests/face/test_face_wiring.py::test_privacy_settings_reach_the_face_pipeline"
FACE_SPEECH_PEOPLE = "tests/face/test_face_wiring.py::test_face_speech_and_people_together_carry_the_member"
PEOPLE = "tests/scene/test_people_settings.py::"
PEOPLE_LINES = PEOPLE + "test_lines_name_points_invert_and_normalized"
PEOPLE_ZONES = PEOPLE + "test_zones_name_points_queue_and_queue_min_wait"
PEOPLE_OCCUPANCY = PEOPLE + "test_occupancy_min_interval_and_heartbeat"
PEOPLE_RELINK = PEOPLE + "test_relink_window_and_thresholds"
HA = "tests/delivery/test_homeassistant.py::"
HA_SETTINGS = HA + "test_the_settings_reach_the_bridge"
PROMETHEUS = "tests/delivery/test_metrics.py::"
PROMETHEUS_PORT = PROMETHEUS + "test_loopback_only_by_default_and_a_taken_port_is_a_config_error"
SPHINX = "tests/speech/test_pocketsphinx.py::"
SPHINX_KEYPHRASE = SPHINX + "test_keyphrase_intent_through_the_streaming_pipeline"
SPHINX_MODES = SPHINX + "test_mode_language_and_microphone_recognizers"
SPHINX_QUEUE = SPHINX + "test_max_pending_utterances_and_when_busy_from_the_settings"
SPHINX_INTENTS = SPHINX + "test_intent_name_phrases_slots_min_confidence_and_cooldown"
VOSK_KO = "tests/speech/test_vosk_pipeline.py::test_korean_grammar_intents_end_to_end"
WHISPER_EN = "tests/speech/test_whisper.py::test_go_forward_intent_in_english"
WHISPER_ZH = "tests/speech/test_whisper.py::test_opening_hours_intent_in_mandarin"
VAD_NOISE = "tests/speech/test_vad.py::test_vad_kind_and_aggressiveness_decide_what_noise_counts_as_speech"
VAD_TIMING = "tests/speech/test_vad.py::test_vad_frame_pre_roll_hangover_min_speech_and_max_utterance"
PRODUCT = "tests/product/test_pipeline.py::"
PRODUCT_CATALOGUE = PRODUCT + "test_catalogue_settings_decide_what_is_searched"
PRODUCT_THRESHOLDS = PRODUCT + "test_score_margin_and_cosine_thresholds_keep_doubtful_frames_unknown"
PRODUCT_VOTES = PRODUCT + "test_vote_settings_decide_when_a_product_is_recognised"
TLS = "tests/delivery/test_tls.py::"
CARDS = "tests/agent/test_serial_events.py::test_taps_and_scans_from_byte_scripts"
FLEET = "tests/fleet/test_member_rules.py::"
FLEET_SETTINGS = FLEET + "test_sync_settings_reach_the_recorder"
FLEET_SYSTEM = (
    "tests/fleet/test_store_members.py::test_enrolled_at_one_terminal_recognised_at_all_erased_everywhere_with_proof"
)
CARD_SECRET = "tests/identity/test_cards.py::test_the_config_names_where_the_card_secret_comes_from"


def _device(kind: str, settings: dict[str, list[str]], type_name: str) -> dict[str, list[str]]:
    """``name``, ``type`` and ``enabled`` of one example entry (the runtime handles them alike for every driver)."""
    common = {"name": [EXAMPLE_RUN], "type": [DRIVER_TYPES], "enabled": [EXAMPLE_RUN]}
    return {f"{kind}[{type_name}].{key}": tests for key, tests in {**common, **settings}.items()}


SETTING_TESTS: dict[str, list[str]] = {
    "version": ["tests/agent/test_config.py::test_version_is_the_config_format_and_only_1_is_read"],
    "store.id": [AGENT_MQTT, MQTT_TOPICS],
    "store.name": [MQTT_TOPICS],
    "store.timezone": [MQTT_TOPICS],
    "terminal.id": [AGENT_MQTT, MQTT_TOPICS],
    "terminal.location": [MQTT_TOPICS],
    "mqtt.host": [AGENT_MQTT, TLS + "test_host_name_is_checked"],
    "mqtt.port": [AGENT_MQTT],
    "mqtt.protocol": [MQTT_CONNECT],
    "mqtt.client_id": [MQTT_CONNECT],
    "mqtt.username": [MQTT_CONNECT, MQTT_PASSWORD],
    "mqtt.password_env": [MQTT_PASSWORD],
    "mqtt.password_credential": [MQTT_PASSWORD],
    "mqtt.tls": [
        TLS + "test_tls_with_client_certificate_connects",
        TLS + "test_wrong_ca_is_refused_clearly",
        TLS + "test_missing_client_certificate_is_refused_clearly",
    ],
    "mqtt.topic_prefix": [MQTT_TOPICS],
    "mqtt.keepalive_s": [MQTT_CONNECT],
    "mqtt.ack": [MQTT_ACK],
    "mqtt.hub_ack_timeout_s": [MQTT_ACK],
    "mqtt.health_interval_s": [MQTT_TOPICS],
    "storage.state_dir": [
        MQTT_TOPICS,
        "tests/delivery/test_demo_and_monitor_cli.py::test_replay_without_a_broker_keeps_the_events_and_delivers_them_on_the_next_run",
    ],
    "storage.outbox.max_rows": [
        "tests/delivery/test_outbox.py::test_full_outbox_drops_telemetry_then_normal_never_protected",
        "tests/delivery/test_outbox.py::test_only_protected_over_cap_are_kept",
    ],
    "storage.outbox.max_bytes": ["tests/delivery/test_outbox.py::test_byte_cap"],
    "storage.outbox.commit_window_ms": [
        "tests/delivery/test_outbox.py::test_commit_window_groups_events_arriving_close_together"
    ],
    **_device(
        "cameras",
        {
            "read_timeout_s": [QUIET_CAMERA],
            "stale_after_s": [QUIET_CAMERA, "tests/drivers/test_rtsp.py::test_rtsp_server_killed_and_restarted"],
            "width": [TEST_PATTERN],
            "height": [TEST_PATTERN],
            "fps": [TEST_PATTERN],
            "frames": [
                TEST_PATTERN,
                "tests/drivers/test_replay_sources.py::test_test_pattern_is_deterministic_and_finite",
            ],
            "walkers": [TEST_PATTERN],
            "realtime": [TEST_PATTERN],
            "seed": [TEST_PATTERN],
        },
        "test-pattern",
    ),
    **_device(
        "cameras",
        {
            "path": [
                "tests/drivers/test_replay_sources.py::test_video_file_delivers_every_frame_with_stamps",
                "tests/drivers/test_replay_sources.py::test_real_pedestrian_video",
            ],
            "realtime": [
                "tests/drivers/test_replay_sources.py::test_video_file_fps_replaces_the_files_own_rate",
                "tests/drivers/test_replay_sources.py::test_video_file_delivers_every_frame_with_stamps",
            ],
            "loop": ["tests/drivers/test_replay_sources.py::test_video_file_loops_and_resizes"],
            "fps": ["tests/drivers/test_replay_sources.py::test_video_file_fps_replaces_the_files_own_rate"],
            "width": ["tests/drivers/test_replay_sources.py::test_video_file_loops_and_resizes"],
        },
        "video-file",
    ),
    **_device(
        "cameras",
        {
            "path": ["tests/drivers/test_replay_sources.py::test_image_folder_in_name_order_skipping_unreadable"],
            "fps": [IMAGE_FOLDER],
            "realtime": [IMAGE_FOLDER],
            "loop": [IMAGE_FOLDER],
        },
        "image-folder",
    ),
    **_device(
        "cameras",
        {
            "url": [
                "tests/drivers/test_rtsp.py::test_rtsp_server_killed_and_restarted",
                "tests/drivers/test_rtsp.py::test_unreachable_server_fails_open_within_timeout",
            ],
            "username": [RTSP_AUTH],
            "password_env": [RTSP_AUTH],
            "transport": [RTSP_AUTH],
            "open_timeout_s": [
                "tests/drivers/test_rtsp.py::test_open_timeout_bounds_waiting_for_a_camera_that_never_answers"
            ],
        },
        "rtsp",
    ),
    **_device(
        "cameras",
        {
            "device": [V4L2, "tests/drivers/test_live_devices.py::test_missing_v4l2_device_is_named"],
            "width": [V4L2],
            "height": [V4L2],
            "fps": [V4L2],
            "fourcc": [V4L2],
        },
        "v4l2",
    ),
    **_device(
        "cameras",
        {"camera_num": [PICAMERA2], "buffer_count": [PICAMERA2], "width": [PICAMERA2], "height": [PICAMERA2]},
        "picamera2",
    ),
    **_device(
        "cameras",
        {"pipeline": ["tests/drivers/test_live_devices.py::test_gstreamer_pipeline_decides_the_frames"]},
        "gstreamer",
    ),
    **_device(
        "microphones",
        {
            "path": ["tests/drivers/test_replay_sources.py::test_real_speech_wav"],
            "sample_rate": [WAV_MIC],
            "chunk_ms": [WAV_MIC, "tests/drivers/test_replay_sources.py::test_wav_microphone_chunks"],
            "realtime": [WAV_MIC],
            "loop": [WAV_MIC],
        },
        "wav-file",
    ),
    **_device(
        "microphones",
        {
            "device": [PORTAUDIO],
            "sample_rate": [PORTAUDIO],
            "chunk_ms": [PORTAUDIO],
            "device_rate": [PORTAUDIO],
            "ring_s": [PORTAUDIO],
            "latency": [PORTAUDIO],
        },
        "sounddevice",
    ),
    **_device(
        "serial",
        {
            "port": ["tests/drivers/test_serial_pty.py::test_pn532_handshake_and_tap"],
            "baudrate": [TTY],
            "bytesize": [UART],
            "parity": [TTY, UART],
            "stopbits": [TTY],
            "rtscts": [TTY],
            "write_timeout_s": ["tests/drivers/test_serial_pty.py::test_write_timeout_bounds_a_write_nobody_takes"],
            "poll_interval_s": [PN532_POLLS],
            "response_timeout_s": [PN532_MISSED],
            "handshake_timeout_s": [
                "tests/drivers/test_serial_pty.py::test_pn532_handshake_timeout_bounds_opening_a_silent_port"
            ],
            "max_missed_responses": [PN532_MISSED],
            "absent_polls": [
                "tests/drivers/test_serial_script.py::test_pn532_absent_polls_decide_when_a_card_was_taken_away"
            ],
            "passive_retries": [PN532_POLLS],
        },
        "pn532",
    ),
    **_device(
        "serial",
        {
            "port": ["tests/drivers/test_serial_pty.py::test_ascii_reader_with_noise_partial_lines_and_repeats"],
            "format": [ASCII_READER, "tests/drivers/test_serial_pty.py::test_rdm6300_frames_on_a_pty"],
            "uid_bytes": [ASCII_READER],
            "reverse": [ASCII_READER],
            "prefix": [ASCII_READER],
            "repeat_window_s": [
                ASCII_READER,
                "tests/drivers/test_serial_pty.py::test_ascii_reader_with_noise_partial_lines_and_repeats",
            ],
        },
        "ascii-reader",
    ),
    **_device(
        "serial",
        {
            "script": ["tests/drivers/test_serial_script.py::test_barcode_replay_realtime_paces_the_waits", BARCODE],
            "port": ["tests/drivers/test_serial_pty.py::test_barcode_scanner_prefix_suffix_aim"],
            "aim_id": [BARCODE],
            "verify_ean": [BARCODE],
            "max_length": [BARCODE],
            "prefix": [BARCODE, "tests/drivers/test_serial_pty.py::test_barcode_scanner_prefix_suffix_aim"],
            "suffix": [BARCODE],
        },
        "barcode",
    ),
    "pipelines.motion.enabled": [EXAMPLE_RUN, SOURCES],
    "pipelines.motion.cameras": [SOURCES],
    "pipelines.motion.min_area": [MOTION + "test_min_area_is_the_smallest_moving_fraction_of_the_frame"],
    "pipelines.motion.threshold": [MOTION + "test_threshold_is_the_grey_level_change_that_counts"],
    "pipelines.motion.end_after_s": [MOTION + "test_end_after_s_is_the_quiet_that_ends_an_episode"],
    "pipelines.motion.downscale_width": [MOTION + "test_downscale_width_decides_how_small_a_change_survives"],
    "pipelines.face.enabled": [EXAMPLE_RUN, SOURCES, FACE_PRIVACY],
    "pipelines.face.cameras": [SOURCES],
    "pipelines.face.embedder": [FACE + "test_embedder_decides_the_templates"],
    "pipelines.face.detector_model": [FACE_DETECTION],
    "pipelines.face.detection_max_side": [FACE_DETECTION],
    "pipelines.face.detection_threshold": [FACE_DETECTION],
    "pipelines.face.match_threshold": [FACE_DECISION],
    "pipelines.face.match_margin": [FACE_DECISION],
    "pipelines.face.liveness_threshold": [FACE_DECISION],
    "pipelines.face.min_face_px": [FACE_GATES],
    "pipelines.face.min_sharpness": [FACE_GATES],
    "pipelines.face.max_yaw": [FACE_GATES],
    "pipelines.face.min_frames": [FACE + "test_min_frames_is_when_a_face_is_decided"],
    "pipelines.face.best_frames": [FACE + "test_best_frames_is_how_many_of_the_best_faces_are_averaged"],
    "pipelines.face.track_timeout_s": [FACE + "test_track_timeout_ends_a_face_track"],
    "pipelines.face.member_window_s": [FACE + "test_member_window_is_how_long_a_member_counts_as_at_the_terminal"],
    "pipelines.face.key_env": [FACE_KEYS],
    "pipelines.face.key_credential": [FACE_KEYS],
    "pipelines.face.key_file": [FACE_KEYS],
    "pipelines.face.kiosk_cameras": [
        "tests/face/test_face_wiring.py::test_mqtt_enroll_from_the_kiosk_camera",
        "tests/delivery/test_attacks.py::test_every_attack_is_refused",
    ],
    "pipelines.people.enabled": [EXAMPLE_RUN, SOURCES, FACE_SPEECH_PEOPLE],
    "pipelines.people.cameras": [SOURCES],
    "pipelines.people.scenes.*.normalized": [PEOPLE_LINES],
    "pipelines.people.scenes.*.anchor": [PEOPLE + "test_anchor_is_the_point_of_a_person_tested_against_zones"],
    "pipelines.people.scenes.*.lines[].name": [PEOPLE_LINES],
    "pipelines.people.scenes.*.lines[].points": [PEOPLE_LINES],
    "pipelines.people.scenes.*.lines[].invert": [PEOPLE_LINES],
    "pipelines.people.scenes.*.zones[].name": [PEOPLE_ZONES],
    "pipelines.people.scenes.*.zones[].points": [PEOPLE_ZONES],
    "pipelines.people.scenes.*.zones[].queue": [PEOPLE_ZONES],
    "pipelines.people.scenes.*.zones[].queue_min_wait_s": [PEOPLE_ZONES],
    "pipelines.people.detect_every": [PEOPLE + "test_detect_every_is_how_often_the_detector_runs"],
    "pipelines.people.score_threshold": [PEOPLE + "test_score_threshold_is_the_lowest_detection_kept"],
    "pipelines.people.new_track_score": [PEOPLE + "test_new_track_score_is_what_starts_a_track"],
    "pipelines.people.lost_track_s": [PEOPLE + "test_lost_track_s_is_how_long_a_track_survives_without_detections"],
    "pipelines.people.enter_frames": [PEOPLE + "test_enter_frames_is_how_long_before_an_entry_counts"],
    "pipelines.people.line_deadband": [PEOPLE + "test_line_deadband_absorbs_jitter_at_a_line"],
    "pipelines.people.occupancy_min_interval_s": [PEOPLE_OCCUPANCY],
    "pipelines.people.occupancy_every_s": [PEOPLE_OCCUPANCY],
    "pipelines.people.relink_window_s": [PEOPLE_RELINK],
    "pipelines.people.relink_threshold": [PEOPLE_RELINK],
    "pipelines.people.relink_threshold_other_camera": [PEOPLE_RELINK],
    "pipelines.people.reid_every": [PEOPLE + "test_reid_every_is_how_often_identified_tracks_are_described"],
    "pipelines.speech.enabled": [
        EXAMPLE_RUN,
        SOURCES,
        SPHINX + "test_transcripts_leave_the_device_only_when_privacy_allows",
    ],
    "pipelines.speech.microphones": [SOURCES],
    "pipelines.speech.recognizers[].engine": [VOSK_KO, SPHINX_KEYPHRASE, WHISPER_EN],
    "pipelines.speech.recognizers[].model": [VOSK_KO, WHISPER_EN],
    "pipelines.speech.recognizers[].language": [SPHINX_MODES, WHISPER_EN, WHISPER_ZH],
    "pipelines.speech.recognizers[].mode": [
        SPHINX_MODES,
        "tests/speech/test_vosk_pipeline.py::test_grammar_does_not_force_an_intent_on_other_speech",
    ],
    "pipelines.speech.recognizers[].kws_threshold": [
        SPHINX + "test_kws_threshold_is_how_readily_a_keyphrase_is_spotted"
    ],
    "pipelines.speech.microphone_recognizers": [SPHINX_MODES],
    "pipelines.speech.vad.kind": [VAD_NOISE],
    "pipelines.speech.vad.aggressiveness": [VAD_NOISE],
    "pipelines.speech.vad.frame_ms": [VAD_TIMING],
    "pipelines.speech.vad.pre_roll_ms": [VAD_TIMING],
    "pipelines.speech.vad.hangover_ms": [VAD_TIMING],
    "pipelines.speech.vad.min_speech_ms": [VAD_TIMING],
    "pipelines.speech.vad.max_utterance_s": [VAD_TIMING],
    "pipelines.speech.max_pending_utterances": [
        SPHINX_QUEUE,
        "tests/speech/test_vosk_pipeline.py::test_under_load_whole_utterances_are_dropped_and_counted",
    ],
    "pipelines.speech.when_busy": [SPHINX_QUEUE],
    "pipelines.speech.intents[].name": [SPHINX_INTENTS],
    "pipelines.speech.intents[].phrases": [SPHINX_INTENTS, "tests/speech/test_text_and_intents.py::test_exact_matches"],
    "pipelines.speech.intents[].slots": [SPHINX_INTENTS, "tests/speech/test_text_and_intents.py::test_exact_matches"],
    "pipelines.speech.intents[].min_confidence": [SPHINX_INTENTS],
    "pipelines.speech.intents[].cooldown_s": [SPHINX_INTENTS],
    "pipelines.product.enabled": [EXAMPLE_RUN, SOURCES],
    "pipelines.product.cameras": [SOURCES],
    "pipelines.product.scanners": [SOURCES, PRODUCT + "test_barcode_maps_to_a_sku_and_a_mismatch_is_its_own_event"],
    "pipelines.product.catalog_dir": [PRODUCT_CATALOGUE],
    "pipelines.product.cache_dir": [PRODUCT_CATALOGUE],
    "pipelines.product.zones": [
        PRODUCT + "test_counter_votes_then_reports_once_and_a_held_product_is_interest",
        PRODUCT + "test_shelf_interest_from_activity_then_from_offered_tracks",
    ],
    "pipelines.product.centre_crop": [PRODUCT_CATALOGUE],
    "pipelines.product.input_size": [
        PRODUCT_CATALOGUE,
        "tests/product/test_embedder_sizes.py::test_free_size_model_matches_the_original_at_224_and_an_independent_export_at_384",
    ],
    "pipelines.product.whitening": [PRODUCT_CATALOGUE],
    "pipelines.product.min_cosine": [PRODUCT_THRESHOLDS],
    "pipelines.product.views": [PRODUCT_CATALOGUE],
    "pipelines.product.fps": [PRODUCT + "test_fps_is_how_often_a_zone_is_looked_at"],
    "pipelines.product.min_score": [PRODUCT_THRESHOLDS],
    "pipelines.product.min_margin": [PRODUCT_THRESHOLDS],
    "pipelines.product.vote_frames": [PRODUCT_VOTES],
    "pipelines.product.vote_min": [PRODUCT_VOTES],
    "pipelines.product.top_k": [PRODUCT + "test_top_k_is_how_many_candidates_an_event_lists"],
    "pipelines.product.repeat_after_s": [PRODUCT + "test_repeat_after_s_is_when_the_same_product_is_announced_again"],
    "pipelines.product.mismatch_window_s": [
        PRODUCT + "test_mismatch_window_s_is_how_far_apart_a_scan_and_a_sighting_are_compared"
    ],
    "pipelines.product.interest_dwell_s": [
        PRODUCT + "test_interest_dwell_s_is_how_long_a_held_product_takes_to_be_interest"
    ],
    "identity.cards.secret_env": [CARDS, CARD_SECRET],
    "identity.cards.secret_credential": [CARD_SECRET],
    "identity.cards.registry": [CARDS],
    "identity.cards.placements": [
        "tests/agent/test_serial_events.py::test_a_tap_at_a_placed_reader_identifies_the_person_standing_there"
    ],
    "privacy.retention.anonymous_track_s": [
        FACE_PRIVACY,
        "tests/delivery/test_outbox.py::test_queued_anonymous_ids_are_nulled_after_the_retention_and_member_ids_are_kept",
        "tests/scene/test_anonymous_ids.py::test_anonymous_ids_live_at_most_the_limit_and_counts_do_not_change",
    ],
    "privacy.retention.events_days": [
        "tests/delivery/test_outbox.py::test_undelivered_events_older_than_events_days_are_dropped"
    ],
    "identity.sync.enabled": [FLEET_SYSTEM, FLEET_SETTINGS],
    "identity.sync.store_key_env": [FLEET_SYSTEM, FLEET_SETTINGS],
    "identity.sync.store_key_credential": [FLEET_SETTINGS],
    "identity.upkeep_interval_s": [
        "tests/delivery/test_audit_upkeep.py::test_consent_expires_on_the_timer_and_the_hub_catches_a_shortened_chain"
    ],
    "privacy.egress.biometric_templates": [
        FLEET_SETTINGS,
        FLEET + "test_only_store_consent_with_egress_allowed_is_announced",
    ],
    "privacy.egress.face_snapshots": [FACE_PRIVACY],
    "privacy.egress.transcripts": [SPHINX + "test_transcripts_leave_the_device_only_when_privacy_allows"],
    "models.directory": ["tests/models/test_sessions.py::test_models_section_reaches_every_session"],
    "models.providers": ["tests/models/test_sessions.py::test_models_section_reaches_every_session"],
    "models.threads": ["tests/models/test_sessions.py::test_models_section_reaches_every_session"],
    "overload.enabled": ["tests/delivery/test_health_rates.py::test_health_shows_pipeline_rates_latency_and_process"],
    "overload.steps": ["tests/delivery/test_overload.py::test_overload_sheds_in_order_and_recovers"],
    "overload.behind_after_s": ["tests/agent/test_overload_controller.py::test_steps_in_order_then_undone_in_reverse"],
    "overload.recover_after_s": ["tests/agent/test_overload_controller.py::test_a_step_that_flaps_waits_twice_as_long"],
    "models.memory_arena": ["tests/models/test_sessions.py::test_memory_arena_setting_reaches_the_sessions"],
    "models.mirror": ["tests/models/test_mirror.py::test_fetch_tries_the_mirror_first"],
    "logging.level": ["tests/agent/test_cli.py::test_logging_settings_shape_what_the_agent_logs"],
    "logging.levels": ["tests/agent/test_cli.py::test_logging_settings_shape_what_the_agent_logs"],
    "logging.format": ["tests/agent/test_cli.py::test_logging_settings_shape_what_the_agent_logs"],
    "integrations.home_assistant.enabled": [
        HA + "test_discovery_and_states_from_a_real_run_of_the_people_pipeline",
        HA_SETTINGS,
    ],
    "integrations.home_assistant.discovery_prefix": [HA_SETTINGS],
    "integrations.home_assistant.member_sensor": [
        HA_SETTINGS,
        HA + "test_member_sensor_is_opt_in_and_forgets_an_erased_member",
    ],
    "integrations.prometheus.enabled": [PROMETHEUS + "test_scraped_during_a_run_and_equal_to_health", PROMETHEUS_PORT],
    "integrations.prometheus.host": [PROMETHEUS_PORT],
    "integrations.prometheus.port": [PROMETHEUS + "test_scraped_during_a_run_and_equal_to_health", PROMETHEUS_PORT],
    "trust.hub_keys": [
        "tests/delivery/test_attacks.py::test_every_attack_is_refused",
        "tests/delivery/test_hub_cli.py::test_keygen_register_and_a_confirmed_signed_erase",
    ],
    "trust.hub_keys_credential": [
        "tests/trust/test_trust.py::test_trust_settings_hub_keys_from_a_credential_and_the_terminal_key_file"
    ],
    "trust.terminal_key_file": [
        "tests/trust/test_trust.py::test_trust_settings_hub_keys_from_a_credential_and_the_terminal_key_file"
    ],
    "trust.open_commands": ["tests/trust/test_trust.py::test_open_commands_need_no_signature_others_do"],
    "trust.max_command_ttl_s": ["tests/trust/test_trust.py::test_clock_skew_and_ttl_limits"],
    "trust.clock_skew_s": [
        "tests/trust/test_trust.py::test_clock_skew_and_ttl_limits",
        "tests/delivery/test_attacks.py::test_every_attack_is_refused",
    ],
    "pipelines.speech.pinyin_min_similarity": [
        "tests/speech/test_text_and_intents.py::test_pinyin_min_similarity_setting_hears_names_by_sound",
        "tests/speech/test_zh_names.py::test_shop_names_of_the_tuning_speaker",
    ],
    "pipelines.people.track_high_score": [
        "tests/scene/test_people_settings.py::test_track_high_score_is_the_first_stage_and_bounds_new_tracks",
        "tests/scene/test_people_settings.py::test_scene_view_and_tiles_choose_the_detector_and_tracker",
    ],
    "pipelines.people.scenes.*.view": [
        "tests/scene/test_people_settings.py::test_scene_view_and_tiles_choose_the_detector_and_tracker",
        "tests/scene/test_counting.py::test_overhead_profile_counts_the_elevated_crowd",
    ],
    "pipelines.people.scenes.*.tiles": [
        "tests/scene/test_people_settings.py::test_scene_view_and_tiles_choose_the_detector_and_tracker",
        "tests/scene/test_counting.py::test_tiles_find_the_small_people_of_an_elevated_crowd",
    ],
    "pipelines.face.threshold_per_gallery": [
        "tests/face/test_face_calibrate.py::test_threshold_per_gallery_moves_the_match_threshold_with_the_gallery_size"
    ],
    "pipelines.face.kiosk_head_turn": [
        "tests/face/test_face_wiring.py::test_kiosk_enrolment_needs_the_prompted_head_turn",
        "tests/face/test_face_wiring.py::test_mqtt_enroll_from_the_kiosk_camera",
    ],
    "pipelines.face.head_turn_time_limit_s": [
        "tests/face/test_face_wiring.py::test_kiosk_enrolment_needs_the_prompted_head_turn",
        "tests/face/test_active_liveness.py::test_challenge_passes_the_prompted_turns_and_fails_wrong_order_timeouts_gaps_and_swaps",
    ],
}


def _strip(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _holds_models(annotation: Any) -> bool:
    """A settings model, or a list of them (what a name-keyed mapping's values must be to be walked into)."""
    annotation = _strip(annotation)
    if _model(annotation) is not None:
        return True
    return typing.get_origin(annotation) is list and _model(typing.get_args(annotation)[0]) is not None


def _walk(node: yaml.Node, annotation: Any, path: str, out: dict[str, int]) -> None:
    annotation = _strip(annotation)
    model = _model(annotation)
    origin = typing.get_origin(annotation)
    if model is not None and isinstance(node, yaml.MappingNode) and node.value:
        for key, value in node.value:
            _walk(value, model.model_fields[key.value].annotation, f"{path}.{key.value}" if path else key.value, out)
        return
    if origin is list and isinstance(node, yaml.SequenceNode) and node.value:
        (item,) = typing.get_args(annotation)
        if _model(item) is not None:
            for element in node.value:
                _walk(element, item, f"{path}[]", out)
            return
    if origin is dict and isinstance(node, yaml.MappingNode) and node.value:
        value_type = typing.get_args(annotation)[1]
        if _holds_models(value_type):
            for _, value in node.value:
                _walk(value, value_type, f"{path}.*", out)
            return
    out.setdefault(path, node.start_mark.line + 1)


@cache
def example_settings() -> dict[str, int]:
    """Every leaf setting path of the example, with the line it first appears on."""
    root = yaml.compose(EXAMPLE.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode)
    out: dict[str, int] = {}
    for key, value in root.value:
        section = key.value
        if section in DEVICE_SECTIONS:
            assert isinstance(value, yaml.SequenceNode)
            for entry in value.value:
                fields = {k.value: v for k, v in entry.value}
                type_name = fields["type"].value
                model = options_model(DEVICE_SECTIONS[section], type_name)
                for name, node in fields.items():
                    _walk(node, model.model_fields[name].annotation, f"{section}[{type_name}].{name}", out)
        else:
            _walk(value, StoreConfig.model_fields[section].annotation, section, out)
    return out


@cache
def functions_in(path: str) -> frozenset[str]:
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    return frozenset(node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


def test_the_walk_sees_every_kind_of_setting() -> None:
    """The enumeration itself: nested sections, device entries by type, lists, name-keyed mappings, leaves."""
    found = example_settings()
    for path in (
        "mqtt.keepalive_s",
        "storage.outbox.max_rows",
        "cameras[video-file].loop",
        "serial[pn532].passive_retries",
        "pipelines.people.scenes.*.zones[].queue",
        "pipelines.speech.recognizers[].kws_threshold",
        "pipelines.speech.vad.hangover_ms",
        "pipelines.speech.intents[].slots",
        "pipelines.speech.microphone_recognizers",
        "mqtt.tls",
        "logging.levels",
    ):
        assert path in found, path
    assert found["mqtt.keepalive_s"] == 29
    assert len(found) > 200


def test_every_setting_of_the_example_has_a_test_that_shows_its_effect() -> None:
    found = example_settings()
    missing = [f"config/store-example.yaml:{line}: {path}" for path, line in found.items() if path not in SETTING_TESTS]
    assert not missing, "settings with no test showing their effect:\n" + "\n".join(missing)


def test_no_entry_names_a_setting_the_example_no_longer_shows() -> None:
    stale = sorted(set(SETTING_TESTS) - set(example_settings()))
    assert not stale, f"SETTING_TESTS entries for settings not in config/store-example.yaml: {stale}"


def test_every_named_test_exists() -> None:
    wrong: list[str] = []
    for path, tests in SETTING_TESTS.items():
        if not tests:
            wrong.append(f"{path}: no test named")
        for node_id in tests:
            file, sep, name = node_id.partition("::")
            if not sep or not file.startswith("tests/") or not (REPO / file).is_file():
                wrong.append(f"{path}: {node_id}: no such test file")
            elif name not in functions_in(file):
                wrong.append(f"{path}: {node_id}: no function {name} in {file}")
    assert not wrong, "\n".join(wrong)
