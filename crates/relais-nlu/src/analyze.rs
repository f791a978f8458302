//! One call that runs every analyser on an inbound message.

use serde::{Deserialize, Serialize};

use crate::intent::{IntentModel, IntentPrediction};
use crate::language::{Language, detect_language};
use crate::sentiment::{Sentiment, sentiment};
use crate::urgency::{Urgency, UrgencyContext, urgency};

/// What the caller knows about the conversation.
pub type AnalysisContext = UrgencyContext;

/// Everything Relais understands about one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub language: Language,
    /// `None` when the tenant has no intent model.
    pub intent: Option<IntentPrediction>,
    pub sentiment: Sentiment,
    pub urgency: Urgency,
}

/// Language, intent (when a model is given), sentiment and urgency of `text`.
/// An out-of-scope message does not lend its best-guess intent to the urgency score.
pub fn analyze(text: &str, model: Option<&IntentModel>, context: &AnalysisContext) -> Analysis {
    analyze_with_intent(text, model.map(|model| model.predict(text)), context)
}

/// [`analyze`] with the intent already predicted (by a two-stage
/// [`crate::TenantModel`], for example).
pub fn analyze_with_intent(
    text: &str,
    intent: Option<IntentPrediction>,
    context: &AnalysisContext,
) -> Analysis {
    let sentiment = sentiment(text);
    let intent_name = intent
        .as_ref()
        .and_then(|prediction| prediction.name.as_deref());
    let urgency = urgency(text, &sentiment, intent_name, context);
    Analysis {
        language: detect_language(text),
        intent,
        sentiment,
        urgency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{Example, TrainConfig};
    use crate::sentiment::SentimentLabel;

    #[test]
    fn analysis_combines_all_signals_and_serialises() -> Result<(), Box<dyn std::error::Error>> {
        let examples: Vec<Example> = [
            ("my card was stolen", "report_fraud"),
            ("someone used my card", "report_fraud"),
            ("on m'a volé ma carte", "report_fraud"),
            ("fraudulent payment on my account", "report_fraud"),
            ("what is my balance", "balance"),
            ("how much money do i have", "balance"),
            ("quel est mon solde", "balance"),
            ("show my account balance", "balance"),
        ]
        .iter()
        .map(|(text, intent)| Example::new(*text, *intent))
        .collect();
        let model = IntentModel::train(&examples, &TrainConfig::default())?;
        let context = AnalysisContext {
            recent_messages: 3,
            urgent_intents: Vec::new(),
        };
        let analysis = analyze(
            "On m'a volé ma carte, c'est urgent !!",
            Some(&model),
            &context,
        );
        assert_eq!(analysis.language, Language::Fr);
        assert_eq!(
            analysis
                .intent
                .as_ref()
                .map(|intent| intent.best_guess.as_str()),
            Some("report_fraud")
        );
        assert!(analysis.urgency.urgent);
        assert_eq!(analysis.sentiment.label, SentimentLabel::Negative);
        let json = serde_json::to_value(&analysis)?;
        assert_eq!(json["language"], "fr");
        assert!(json["sentiment"]["emotions"]["anger"].is_number());
        assert!(json["urgency"]["cues"].is_array());

        let without_model = analyze("hello", None, &AnalysisContext::default());
        assert!(without_model.intent.is_none());
        Ok(())
    }
}
