"""Shared fixtures: a private cache folder per test session, and the real-data location; the tests
that the quick command (``python -m pytest -q -m "not slow"``) leaves out."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")


# Tests of 3 s or more on the 2-core CPU (seconds measured by --durations on 2026-12-05, beside other
# work): the README's quick command skips them, the full command (and CI) runs them. Tests whose
# slowness is their nature (a real training run, torchrun, a notebook) carry @pytest.mark.slow
# themselves; this list holds the ones that are slow only at this machine's speed.
SLOW = {
    "tests/test_examples.py::test_notebook_runs_in_quick_mode[003]": 49.1,
    "tests/test_architectures.py::test_cli_models_json_lists_params_and_macs": 43.21,
    "tests/test_segment_benchmark.py::test_gpu_benchmark_smoke_run_writes_every_group": 42.98,
    "tests/test_speed.py::test_torch_compile_really_compiles_on_the_cpu": 40.31,
    "tests/test_examples.py::test_notebook_runs_in_quick_mode[001]": 38.07,
    "tests/test_examples.py::test_notebook_runs_in_quick_mode[000]": 32.33,
    "tests/test_train.py::test_ddp_under_torchrun_equals_one_process_with_the_global_batch": 29.59,
    "tests/test_train.py::test_default_job_on_digits_reaches_97_percent": 27.29,
    "tests/test_train.py::test_fashion_mnist_short_real_run_has_a_real_accuracy_floor": 24.49,
    "tests/test_recipes.py::test_zoo_is_every_scratch_classifier_and_each_fits_32_pixels": 22.52,
    "tests/test_segment_benchmark.py::test_gpu_benchmark_out_of_budget_skips_the_optional_groups_and_still_reports": 22.34,
    "tests/test_train.py::test_cli_adversarial_training_reports_robust_beside_clean_accuracy": 21.86,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[cam-robustness]": 21.45,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[optimisers]": 21.06,
    "tests/test_examples.py::test_notebook_runs_in_quick_mode[002]": 21.05,
    "tests/test_examples.py::test_notebook_runs_in_quick_mode[004]": 19.07,
    "tests/test_outputs.py::test_two_trainings_started_at_once_on_one_out_do_not_both_succeed": 16.51,
    "tests/test_recipes.py::test_zoo_benchmark_smoke_mode_writes_table_json_and_plot": 16.48,
    "tests/test_segment_benchmark.py::test_cpu_ablation_on_isbi_writes_one_row_per_change": 14.03,
    "tests/test_segment.py::test_real_presets_read_with_their_formats": 13.61,
    "tests/test_web_hostile.py::test_lab_robustness_and_metrics_json_parse_strictly_and_no_verdict_comes_from_zero_cases": 12.83,
    "tests/test_outputs.py::test_user_files_survive_every_writing_command[scratch-check]": 8.32,
    "tests/test_explain.py::test_cli_lab_cam_robustness_trains_both_models_and_writes_files_that_parse": 11.83,
    "tests/test_hostile.py::test_ctrl_c_names_the_epoch_and_how_to_continue": 11.57,
    "tests/test_outputs.py::test_user_files_survive_every_writing_command[train]": 11.48,
    "tests/test_outputs.py::test_user_files_survive_every_writing_command[lab-cam-robustness]": 5.04,
    "tests/test_repeatable.py::test_classification_runs_repeat_exactly": 10.14,
    "tests/test_recipes.py::test_every_course_recipe_resolves_and_runs_one_tiny_step[colour-digits]": 9.67,
    "tests/test_lifecycle.py::test_a_classifier_resumed_after_epoch_1_ends_as_an_unbroken_run": 9.48,
    "tests/test_recipes.py::test_frozen_phase_keeps_the_pretrained_trunk_and_finetuning_changes_it": 8.13,
    "tests/test_inception.py::test_forward_backward_at_299[inception-resnet-v2]": 7.9,
    "tests/test_recipes.py::test_every_course_recipe_resolves_and_runs_one_tiny_step[resnext29]": 7.51,
    "tests/test_recipes.py::test_every_course_recipe_resolves_and_runs_one_tiny_step[resnet9-onecycle]": 7.36,
    "tests/test_explain.py::test_cli_visualize_compare_attack_writes_figure_and_json": 7.36,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[unet-skips]": 7.11,
    "tests/test_recipes.py::test_every_course_recipe_resolves_and_runs_one_tiny_step[cifar10-transfer-resnet50]": 7.11,
    "tests/test_export.py::test_cli_export_leaves_the_batch_axis_dynamic_unless_static_batch": 6.99,
    "tests/test_outputs.py::test_user_files_survive_every_writing_command[lab-run-bn-scale-invariance]": 4.73,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[cnn-weaknesses]": 6.28,
    "tests/test_repeatable.py::test_a_lab_repeats_exactly": 5.95,
    "tests/test_recipes.py::test_bce_trains_one_logit_and_every_tool_reads_it_as_two_classes": 5.8,
    "tests/test_outputs.py::test_user_files_survive_every_writing_command[evaluate]": 5.76,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[bn-batch-size]": 12.68,  # + equal steps
    "tests/test_train_features.py::test_the_cli_takes_the_features_and_records_them": 5.47,
    "tests/test_export.py::test_segmenter_exports_at_a_given_size": 5,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[residual-scaling]": 4.97,
    "tests/test_train.py::test_evaluate_prints_real_numbers_and_top5_on_the_split_and_batch_size_asked": 4.93,
    "tests/test_train.py::test_cli_train_evaluate_predict_show": 4.89,
    "tests/test_labs_vqa.py::test_quick_lab_writes_files_that_parse": 4.91,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[bottleneck-1x1]": 4.89,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[vqa-localisation]": 4.82,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[stride-vs-pooling]": 4.87,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[initialisation]": 4.81,
    "tests/test_segment.py::test_train_learns_an_easy_scene_and_writes_the_run_folder": 4.63,
    "tests/test_inception.py::test_small_variants_forward_backward[32-3-inception-v3-cifar-kw0]": 4.41,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[dropout-augmentation]": 4.38,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[se-ratio]": 4.36,
    "tests/test_outputs.py::test_a_lock_left_by_a_killed_run_is_taken_over": 4.36,
    "tests/test_train.py::test_cli_bad_input_is_one_clear_line": 4.35,
    "tests/test_inception.py::test_small_variants_forward_backward[28-1-inception-v3-cifar-kw0]": 4.3,
    "tests/test_analysis_peers.py::test_total_macs_and_params_equal_fvcore_and_numel[vgg11]": 4.26,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[bn-learning-rate]": 4.11,
    "tests/test_inception.py::test_forward_backward_at_299[inception-v4]": 4.1,
    "tests/test_hostile.py::test_overwrite_replaces_the_run": 4.07,
    "tests/test_cli_options.py::test_cli_values_reach_the_trainconfig_of_a_classification_run": 4.07,
    "tests/test_attack.py::test_cli_attack_sweep_and_panels": 3.99,
    "tests/test_loaders_fuzz.py::test_cifar_random_structures": 3.87,
    "tests/test_recipes.py::test_course_recipes_benchmark_tables_a_finished_run": 3.74,
    "tests/test_inception.py::test_small_input_variants_keep_the_parameters_and_resolutions[inception-resnet-v2]": 3.54,
    "tests/test_recipes.py::test_every_course_recipe_resolves_and_runs_one_tiny_step[cifar10-cnn]": 3.5,
    "tests/test_speed.py::test_cli_trains_with_the_fast_recipe_on_an_image_folder": 3.46,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[dilation]": 3.43,
    "tests/test_train.py::test_train_prints_the_run_folder_it_wrote_and_records_the_versions": 3.42,
    "tests/test_labs.py::test_every_lab_runs_quick_and_quotes_its_numbers[vanishing-gradients]": 3.29,
    "tests/test_scratch_conv.py::test_scratch_check_covers_the_cnn": 3.27,
    "tests/test_hostile.py::test_failed_resume_keeps_config_json_and_a_resume_continues_the_run": 3.25,
    "tests/test_train.py::test_resume_after_a_crash_gives_the_same_result_as_an_unbroken_run": 3.25,
    "tests/test_train_features.py::test_config_reruns_a_run_exactly_and_print_config_shows_the_layers": 15.0,
    "tests/test_train_features.py::test_resume_with_more_epochs_extends_a_finished_run_on_the_new_schedule[onecycle]": 15.0,
    "tests/test_train_features.py::test_resume_with_more_epochs_extends_a_finished_run_on_the_new_schedule[cosine]": 15.0,
    "tests/test_train_features.py::test_progress_goes_to_stderr_and_train_log_results_to_stdout": 12.0,
    "tests/test_train_features.py::test_cnnlab_train_streams_a_folder_over_budget_and_says_so": 6.0,
    "tests/test_export.py::test_predict_backend_onnx_never_imports_torch": 8.0,
    "tests/test_labs_architecture.py::test_compound_grid_quick_run_writes_files_that_parse": 5.77,
}


COLLECTED: set[str] = set()  # every test collected, before -m/-k deselect any (tests/test_suite.py)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    COLLECTED.update(item.nodeid for item in items)
    for item in items:
        if item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decode caches and downloads go to a temporary folder, never the user's cache."""
    os.environ["CNNLAB_CACHE"] = str(tmp_path_factory.mktemp("cnnlab-cache"))


def real_data(name: str) -> Path:
    """The real dataset folder under $CNNLAB_DATA, or skip the test when it is not there."""
    root = os.environ.get("CNNLAB_DATA")
    if not root or not (Path(root) / name).is_dir():
        pytest.skip(f"real dataset {name} not available (set CNNLAB_DATA)")
    return Path(root) / name


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A finished classification run folder (simple-cnn width 8, 2 epochs on the embedded digits,
    with TensorBoard logging), shared by the report, export, demo and browser tests."""
    from cnnlab.classify.api import train_classifier

    out = tmp_path_factory.mktemp("digits") / "run"
    train_classifier("digits", out=out, epochs=2, model_kwargs={"width": 8}, tensorboard=True, progress=False)
    return out


@pytest.fixture(scope="session")
def _session_threads() -> int:
    import torch

    return torch.get_num_threads()


@pytest.fixture(autouse=True)
def _restore_torch_threads(_session_threads):
    """Put PyTorch's thread count back to the session's after every test: a test or fixture (or a
    CLI handler a test calls in process) that sets it would otherwise change the numerics of every
    later test."""
    import torch

    yield
    torch.set_num_threads(_session_threads)
