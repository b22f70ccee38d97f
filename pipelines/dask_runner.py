"""Beam's DaskRunner with each output of a multi-output ParDo going to its own consumers.

Beam 2.77's DaskRunner (`apache_beam.runners.dask.dask_runner`) turns a ParDo into one Dask bag holding every
value the DoFn emits, main and tagged (`pvalue.TaggedOutput`) alike, with the tags dropped, and hands that whole
bag to the consumer of any of its outputs. A pipeline that splits a collection (``.with_outputs(...)``,
``RunInference(...).with_exception_handling()``) then sees its main results in its dead-letter branch and the
reverse: found by ``rcforge bootstrap --runner DaskRunner``, whose image-reading failures came back holding decoded
images. It also drops what a DoFn emits in ``finish_bundle`` (the last batch of a `BatchElements`, so
RunInference's last requests of every bundle).

This runner keeps each tagged value's tag in the ParDo's bag (`TaggedParDo`), visits the pipeline as Beam's does
(the code below follows Beam's ``visit_transform`` and ``ParDo.apply``, Apache License 2.0), and filters a
multi-output producer's bag by the consuming PCollection's tag; consumers unwrap the tag themselves
(`transform_evaluator.get_windowed_value`).

It also spreads the work. Beam's puts up to 128 created elements in one Dask partition and keeps a grouping's
partition count, so a pipeline that starts from a few coarse elements (rcforge's: one per source, one per
image-record part) runs on one worker however large the cluster: measured, 2 workers rendered 0.96x as fast as
one. Beam's Reshuffle is a no-op there too. Here each created element is its own partition (unless
``--dask_npartitions`` or ``--dask_partition_size`` says otherwise), and a Reshuffle or a GroupByKey spreads its
output over four times as many partitions as the cluster has worker threads (more would only add per-task overhead:
64 partitions made one worker 1.5x slower). `--runner DaskRunner`
on rcforge's command line selects it (`rcforge.pipelines.runners`).
"""

from __future__ import annotations

import types

import apache_beam
from apache_beam import pvalue
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler  # as Beam's evaluator
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask.overrides import _Create, _GroupByKeyOnly, _Reshuffle
from apache_beam.runners.dask.transform_evaluator import (
    TRANSLATIONS,
    Create,
    DaskBagOp,
    DaskBagWindowedIterator,
    Flatten,
    GroupByKey,
    NoOp,
    OneReceiver,
    ParDo,
    defenestrate,
    get_windowed_value,
)
from apache_beam.transforms.core import DoFn
from apache_beam.transforms.sideinputs import SideInputMap


def _run_bundle(items, invoker_args, invoker_kwargs, receivers):
    """Beam's ``apply_dofn_to_bundle``, except that a tagged value keeps its `pvalue.TaggedOutput` wrapper and
    what the DoFn emits in ``finish_bundle`` is kept (Beam's collects the outputs before it: a `BatchElements`
    loses its last, partial batch)."""
    invoker = DoFnInvoker.create_invoker(*invoker_args, **invoker_kwargs)
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return [v if isinstance(v, pvalue.TaggedOutput) else v.value for v in receivers.values]


class TaggedParDo(ParDo):
    """Beam's Dask ParDo whose bag keeps the tags of tagged outputs."""

    def apply(self, input_bag, side_inputs=None):
        transform = self.transform
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
        receivers = OneReceiver()
        invoker_args = [DoFnSignature(transform.fn), _OutputHandler(
            window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
            per_element_output_counter=None, output_batch_converter=None, process_yields_batches=False,
            process_batch_yields_elements=False)]
        invoker_kwargs = dict(context=DoFnContext(transform.label, state=None), side_inputs=side_inputs,
                              input_args=list(args), input_kwargs=kwargs, user_state_context=None,
                              bundle_finalizer_param=DoFn.BundleFinalizerParam())
        return input_bag.map(get_windowed_value, window_fn).map_partitions(_run_bundle, invoker_args,
                                                                          invoker_kwargs, receivers)


#: partitions per worker thread after a Reshuffle or a GroupByKey
PER_THREAD = 4


def _spread() -> int:
    """Four times the worker threads of the cluster the runner just connected to (its default client)."""
    try:
        from dask.distributed import get_client

        threads = sum(w.get("nthreads", 1) for w in get_client().scheduler_info()["workers"].values())
    except (ImportError, ValueError):
        threads = 1
    return max(1, PER_THREAD * threads)


class SpreadCreate(Create):
    """Beam's Create, one partition per element unless the Dask options set the partitioning."""

    def apply(self, input_bag=None, side_inputs=None):
        if self.bag_kwargs.get("npartitions") or self.bag_kwargs.get("partition_size"):
            return super().apply(input_bag, side_inputs)
        import dask.bag as db

        return db.from_sequence(self.transform.values, partition_size=1)


def _group_value(item):
    key, values = item
    return key, [defenestrate(v[1]) for v in values]


class SpreadGroupByKey(GroupByKey):
    """Beam's GroupByKey, its groups spread over the cluster (see the module docstring)."""

    def apply(self, input_bag, side_inputs=None):
        partitions = max(input_bag.npartitions, self.bag_kwargs.get("rcforge_spread", 1))
        return input_bag.groupby(_group_key, npartitions=partitions).map(_group_value)


class SpreadReshuffle(DaskBagOp):
    """Beam's Reshuffle (a no-op in Beam's DaskRunner): the elements split over the cluster, so the work after it
    spreads over the workers."""

    def apply(self, input_bag, side_inputs=None):
        spread = max(input_bag.npartitions, self.bag_kwargs.get("rcforge_spread", 1))
        return input_bag.repartition(npartitions=spread)


def _group_key(item):
    return item[0]


def _untagged(value) -> bool:
    return not isinstance(value, pvalue.TaggedOutput)


def _tagged(tag: str):
    def keep(value) -> bool:
        return isinstance(value, pvalue.TaggedOutput) and value.tag == tag
    return keep


def _bag_of(bags: dict, pcoll):
    """The bag of ``pcoll``: its producer's bag, narrowed to ``pcoll``'s own values when the producer has several
    outputs (Beam's TaggedOutput wrappers are unwrapped by the consumer's `get_windowed_value`)."""
    bag = bags[pcoll.producer]
    if len(pcoll.producer.outputs) <= 1:
        return bag
    return bag.filter(_untagged if pcoll.tag is None else _tagged(pcoll.tag))


def _visit_transform(self, transform_node) -> None:
    kind = transform_node.transform.__class__
    op_class = OURS.get(kind) or TRANSLATIONS.get(kind, NoOp)
    op = op_class(transform_node, bag_kwargs=self.bag_kwargs)
    op_kws = {"input_bag": None, "side_inputs": None}
    inputs = list(transform_node.inputs)
    if inputs:
        bag_inputs = []
        for input_value in inputs:
            if isinstance(input_value, pvalue.PBegin):
                bag_inputs.append(None)
            elif input_value.producer in self.bags:
                bag_inputs.append(_bag_of(self.bags, input_value))
        op_kws["input_bag"] = bag_inputs[0] if len(bag_inputs) == 1 and not isinstance(op, Flatten) else bag_inputs
    side_inputs = list(transform_node.side_inputs)
    if side_inputs:
        op_kws["side_inputs"] = [
            SideInputMap(type(si), si._view_options(),
                         DaskBagWindowedIterator(_bag_of(self.bags, si.pvalue), si._window_mapping_fn))
            for si in side_inputs]
    self.bags[transform_node] = op.apply(**op_kws)


#: transforms translated here rather than by Beam's evaluator
OURS = {apache_beam.ParDo: TaggedParDo, _Create: SpreadCreate, _GroupByKeyOnly: SpreadGroupByKey,
        _Reshuffle: SpreadReshuffle}


class DaskRunner(beam_dask.DaskRunner):
    """`beam_dask.DaskRunner` whose pipeline visitor routes tagged outputs (see the module docstring)."""

    @staticmethod
    def to_dask_bag_visitor(bag_kwargs=None):
        visitor = beam_dask.DaskRunner.to_dask_bag_visitor(bag_kwargs)
        visitor.bag_kwargs = {**(bag_kwargs or {}), "rcforge_spread": _spread()}
        visitor.visit_transform = types.MethodType(_visit_transform, visitor)
        return visitor
