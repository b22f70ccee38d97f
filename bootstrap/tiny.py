"""Tiny randomly initialized models built offline from configs (no download), saved like hub checkpoints, for the
bootstrap tests and the benchmark (as `torch.testing` ships helpers for its users' tests): Florence-2, Kosmos-2 and a
LLaVA (the chat backend's image-text-to-text family). Their tokenizers are byte-level BPEs trained here on a few
phrases. The shared NOTES.md lists the traps."""


def bpe_tokenizer(texts, special_tokens, vocab_size):
    """A byte-level BPE tokenizer trained here on a few texts (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(texts) * 10, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def tiny_florence2(folder):
    """A random Florence-2 with a tokenizer trained in-process; saved like a hub checkpoint."""
    from tokenizers import processors
    from transformers import (
        BartConfig,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        Florence2VisionConfig,
        PreTrainedTokenizerFast,
    )

    tok = bpe_tokenizer(["a red car on the street", "a man in a grey jacket", "a clock on a pole"],
                        ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>"], 400)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>")
    fast.add_tokens([f"<loc_{i}>" for i in range(1000)])
    fast = PreTrainedTokenizerFast(tokenizer_object=fast.backend_tokenizer, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   extra_special_tokens={"image_token": "<image>"})
    side = 64
    images = CLIPImageProcessor(size={"height": side, "width": side}, crop_size={"height": side, "width": side},
                                do_center_crop=False, image_seq_length=1 + (side // 32) ** 2)
    processor = Florence2Processor(image_processor=images, tokenizer=fast, post_processor_config={
        "phrase_grounding": {"banned_grounding_tokens": []}, "pure_text": {}})
    vision = Florence2VisionConfig(depths=[1, 1, 1, 1], embed_dim=[16, 16, 32, 32], num_heads=[2, 2, 2, 2],
                                   num_groups=[2, 2, 2, 2], projection_dim=32, window_size=2)
    text = BartConfig(vocab_size=len(fast), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                      decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                      pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      decoder_start_token_id=fast.eos_token_id)
    import torch

    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(Florence2Config(
        vision_config=vision, text_config=text, image_token_id=fast.convert_tokens_to_ids("<image>")))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_kosmos2(folder):
    """A random Kosmos-2 with a tokenizer trained in-process; saved like a hub checkpoint."""
    from transformers import (
        CLIPImageProcessor,
        Kosmos2Config,
        Kosmos2ForConditionalGeneration,
        Kosmos2Processor,
        PreTrainedTokenizerFast,
    )

    tok = bpe_tokenizer(["a red car on the street It is", "a man in a grey jacket"],
                        ["<s>", "<pad>", "</s>", "<unk>"], 300)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    processor = Kosmos2Processor(CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
                                 fast, num_patch_index_tokens=1024)
    config = Kosmos2Config(
        text_config={"vocab_size": len(processor.tokenizer), "embed_dim": 32, "layers": 1, "attention_heads": 2,
                     "ffn_dim": 64, "max_position_embeddings": 256},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 28, "patch_size": 14},
        latent_query_num=4)
    import torch

    torch.manual_seed(0)
    Kosmos2ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


LLAVA_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def tiny_llava(folder):
    """A random LLaVA (CLIP vision tower, Llama text model) with LLaVA-1.5's chat layout."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    tok = bpe_tokenizer(["a red car on the street", "Please provide a short description for this region: [0.10, 0.20]",
                         "the bounding box coordinate of the region this sentence describes"],
                        ["<unk>", "<s>", "</s>", "<pad>", "<image>"], 400)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    images = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=images, tokenizer=fast, chat_template=LLAVA_CHAT_TEMPLATE,
                               patch_size=14, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=28, patch_size=14, projection_dim=32),
        text_config=LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                                bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                                pad_token_id=fast.pad_token_id),
        image_token_id=fast.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default")
    import torch

    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
